// The `bytes:` and `entries:` (readable events) lines of per_cpu/cpuN/stats worked out by hand for one small buffer
// (two 4080-byte data pages): records of 32 bytes, a time extend of 8 bytes after a gap of more
// than 2^27 ns, page padding counted when the writer leaves or closes a page, a refused write with
// overwrite off, an overwritten page (−4080) and a resize. The kernel's entries_bytes follows the
// same rules (rb_update_write_stamp / rb_tail_page_update / rb_handle_head_page).

import { describe, expect, it } from "vitest"
import { TASK_CONTEXT } from "../../src/trace/context.ts"
import type { PrintkSite } from "../../src/trace/tracer.ts"
import { testTrace } from "./support.ts"

const stat = (text: string, name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(text)![1])

describe("ring buffer byte accounting", () => {
  it("counts records, time extends, padding, overwritten pages and resizes as the kernel does", () => {
    const t = testTrace({ cpus: 1, bufferBytes: 2 * 4080 })
    const site = t.tracer.registerPrintk("f", "x %d\n") as PrintkSite // 24 + 4 bytes payload → 32-byte record
    const write = (): boolean => {
      t.tracer.setArg(0, 7)
      return t.tracer.printk(0, 12398, TASK_CONTEXT, site)
    }
    const stats = (): [number, number, number, number] => {
      const s = t.tracer.statsText(0)
      return [stat(s, "entries"), stat(s, "overrun"), stat(s, "bytes"), stat(s, "dropped events")]
    }
    t.clock.set(1_000)
    write()
    expect(stats()).toEqual([1, 0, 32, 0])
    t.clock.advance(2 ** 27 + 5)
    write()
    expect(stats()).toEqual([2, 0, 32 + 8 + 32, 0])
    // Page 0 holds 72 + 125 × 32 = 4072 bytes; the next record starts page 1 and page 0's last 8 bytes become padding.
    for (let i = 0; i < 125; i++) write()
    expect(stats()).toEqual([127, 0, 4072, 0])
    write()
    expect(stats()).toEqual([128, 0, 4080 + 32, 0])
    // Fill page 1 (127 records = 4064 bytes); with overwrite off the next write is refused and the page closed (16 bytes padding).
    t.tracer.setOverwrite(false)
    for (let i = 0; i < 126; i++) expect(write()).toBe(true)
    expect(stats()).toEqual([254, 0, 4080 + 4064, 0])
    expect(write()).toBe(false)
    expect(write()).toBe(false)
    expect(stats()).toEqual([254, 0, 4080 + 4080, 2])
    // Overwrite on: the writer takes page 0 back; its 127 events are overrun and its 4080 bytes leave the count.
    t.tracer.setOverwrite(true)
    expect(write()).toBe(true)
    expect(stats()).toEqual([128, 127, 4080 + 32, 2])
    // Growing keeps every page and its bytes.
    t.tracer.resizeBytes(4 * 4080, 0)
    expect(stats()).toEqual([128, 127, 4080 + 32, 2])
    write()
    expect(stats()).toEqual([129, 127, 4080 + 64, 2])
    // Shrinking to 2 pages again drops nothing: only two pages hold data.
    t.tracer.resizeBytes(2 * 4080, 0)
    expect(stats()).toEqual([129, 127, 4080 + 64, 2])
  })
})
