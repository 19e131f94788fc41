// One CPU's ring buffer, laid out like the kernel's (kernel/trace/ring_buffer.c, ftrace.md §3):
// a circular list of 4 KiB pages (16-byte header, 4080 data bytes) plus one reader page outside
// the ring, records with a 4-byte header (5-bit type_len, 27-bit time delta), 4-byte alignment,
// time-extend records for long gaps, page-end padding, overwrite and no-overwrite modes, and
// the counters behind per_cpu/cpuN/stats. Everything is typed arrays and integers: the write
// path allocates nothing.

export const PAGE_BYTES = 4096
export const PAGE_HEADER_BYTES = 16
/** Data bytes of a page (BUF_PAGE_SIZE). */
export const PAGE_DATA_BYTES = 4080
const PAGE_WORDS = PAGE_BYTES / 4
const HEADER_WORDS = PAGE_HEADER_BYTES / 4

export const TYPE_LEN_PADDING = 29
export const TYPE_LEN_TIME_EXTEND = 30
export const TYPE_LEN_TIME_STAMP = 31
/** Largest payload encoded in type_len (28 words); bigger ones carry an explicit length word. */
export const MAX_SMALL_PAYLOAD = 112
/** Largest payload one event may have: a page minus the header word and the length word. */
export const MAX_PAYLOAD_BYTES = PAGE_DATA_BYTES - 8
/**
 * A delta must fit the header's 27 bits; a larger gap needs a time-extend record first. An enum
 * member because the bundler writes it in as a literal, where a module-level const stays a
 * context-slot load and a number check on every write.
 */
const enum Delta {
  LIMIT = 1 << 27,
}
const DELTA_LIMIT = Delta.LIMIT
const TIME_EXTEND_BYTES = 8
/** The per-CPU times of a ring whose writer has none (never read: its gate is then not 0). */
const NO_LOCAL_TIMES = new Float64Array(0)
/** More pages than any CPU buffer may have (their word indices stay below 2^30). */
const MAX_PAGES = 1 << 20
/** Fewest pages a CPU buffer has (the kernel refuses fewer). */
export const MIN_PAGES = 2

/** Bytes a record with this payload occupies in a page (rb_calculate_event_length). */
export const recordLength = (payloadBytes: number): number => {
  let length = payloadBytes === 0 ? 1 : payloadBytes
  if (length > MAX_SMALL_PAYLOAD) length += 4
  length = (length + 4 + 3) & ~3
  // A 12-byte event could be mistaken for a time extend (8) plus 4; the kernel bumps it to 16.
  if (length === TIME_EXTEND_BYTES + 4) length += 4
  return length
}

/** Pages of `bytes` data rounded up (DIV_ROUND_UP(size, BUF_PAGE_SIZE)), at least MIN_PAGES. */
export const pagesForBytes = (bytes: number): number => Math.max(MIN_PAGES, Math.ceil(bytes / PAGE_DATA_BYTES))

/**
 * Where an event sits, filled in by the readers (no allocation per event): `word` indexes the
 * payload in `words`/`bytes` (4-byte aligned), `ts` is its absolute time in ns.
 */
export class EventCursor {
  word = 0
  payloadBytes = 0
  ts = 0
  /** For consuming reads: events lost (overwritten) just before this one, 0 if none. */
  lost = 0
}

/** A non-consuming reader's position (one per CPU per open `trace` file). */
export class RingIterator {
  page = -1
  offset = 0
  ts = 0
  generation = 0
  /** Set when the writer overwrote the page under the iterator; the next event reports it. */
  lostEvents = false
  done = false
  constructor(readonly ring: CpuRingBuffer) {}
}

export class CpuRingBuffer {
  // The writer's state comes first (declaration order is field order: these share the object's
  // first cache line). The page being written keeps its used bytes and entry count here rather
  // than in pageUsed/pageEntries, so a write touches this object and the page's bytes only.
  // Protected: a subclass writing fixed records (KvmCpuWriter) reserves on the fast path itself.
  words: Uint32Array = new Uint32Array(0)
  /** Word index of the tail page's first data word. */
  protected tailBase = HEADER_WORDS
  /** Data bytes used on the tail page (pageUsed[tail] is stale while it is the tail). */
  protected tailUsed = 0
  /** Data bytes the tail page may still fill up to: PAGE_DATA_BYTES, or 0 once it is closed (one test on the write fast path). */
  protected tailLimit = PAGE_DATA_BYTES
  /** Events committed on the tail page (pageEntries[tail] is stale while it is the tail). */
  protected tailEntries = 0
  /** Time of the last event written (the kernel's write_stamp). */
  lastStamp = 0
  /** Called after every commit; the tracer uses it to wake blocked trace_pipe readers. */
  onCommit: (() => void) | undefined = undefined
  // What a writer stamping its own records on this ring (KvmCpuWriter, a subclass) reads for
  // every record: here, next to the tail state, so a record touches one cache line of one object
  // (a subclass's own fields come after all of these).
  /** The tracer's write gate as such a writer sees it (0: recording with the per-CPU times in localNs). */
  gate = 2
  /** The clock's per-CPU times (read only while gate is 0). */
  protected localNs: Float64Array = NO_LOCAL_TIMES
  /** The CPU this ring belongs to. */
  cpu = 0
  /** Whether the writer records the 6.x layouts (era D) rather than 5.0's. */
  protected eraD = false
  /** Page being written (the kernel's tail page). */
  tail = 0

  /** Ring pages (nr_pages); one more page is the reader page. */
  pageCount = 0
  bytes: Uint8Array = new Uint8Array(0)
  private next: Int32Array = new Int32Array(0)
  private prev: Int32Array = new Int32Array(0)
  /** Absolute time stamp of each page's first event. */
  pageTs: Float64Array = new Float64Array(0)
  /** Data bytes written on each page except the tail (records only; the rest of a closed page is padding). */
  private pageUsed: Int32Array = new Int32Array(0)
  /** Events committed on each page except the tail. */
  private pageEntries: Int32Array = new Int32Array(0)
  /** A page whose unused tail has been turned into padding (the writer left it, or was refused). */
  private pageClosed: Uint8Array = new Uint8Array(0)
  /** Bumped whenever a page is reused, so iterators notice that their page was overwritten. */
  pageGeneration: Uint32Array = new Uint32Array(0)

  head = 0
  readerPage = 0
  /** Bytes of the reader page already consumed. */
  readerRead = 0
  /** Time stamp of the consuming reader's position. */
  private readStamp = 0

  /** Events committed on pages the writer has left, since the last reset (entries adds the tail's). */
  private entriesBeforeTail = 0
  overrun = 0
  /** Events refused while overwrite is off. */
  dropped = 0
  /** Events consumed by trace_pipe. */
  read = 0
  commitOverrun = 0
  /** entries_bytes without the tail page's records (entriesBytes adds the tail's used bytes). */
  private bytesBeforeTail = 0
  private readBytes = 0
  /** Overrun already reported to the consuming reader (the kernel's last_overrun). */
  private lastOverrun = 0
  private lostEvents = 0

  overwrite = true
  /** Whether consuming a record lowers `bytes` (the kernel does since 6.6; 5.x only for raw reads). */
  consumeLowersBytes = false

  constructor(pages: number) {
    this.allocate(pages)
  }

  /** Events committed since the last reset. */
  get entries(): number {
    return this.entriesBeforeTail + this.tailEntries
  }

  /** The kernel's entries_bytes: committed record bytes and page padding, less overwritten pages. */
  private get entriesBytes(): number {
    return this.bytesBeforeTail + this.tailUsed
  }

  /** Data bytes written on a page (records and time extends; a closed page's padding not included). */
  usedOnPage(page: number): number {
    return page === this.tail ? this.tailUsed : this.pageUsed[page]!
  }

  /** Events committed on a page. */
  private entriesOnPage(page: number): number {
    return page === this.tail ? this.tailEntries : this.pageEntries[page]!
  }

  /** Makes `page` the tail: its used bytes and entries move into the writer's fields. */
  private enterTail(page: number): void {
    this.tail = page
    this.tailBase = page * PAGE_WORDS + HEADER_WORDS
    this.tailUsed = this.pageUsed[page]!
    this.tailEntries = this.pageEntries[page]!
    this.tailLimit = this.pageClosed[page] === 1 ? 0 : PAGE_DATA_BYTES
  }

  /** The tail's writer fields back into the per-page arrays (before the tail moves or pages are copied). */
  private leaveTail(): void {
    this.pageUsed[this.tail] = this.tailUsed
    this.pageEntries[this.tail] = this.tailEntries
  }

  /** Readable events: entries − overrun − read. */
  get readable(): number {
    return this.entries - this.overrun - this.read
  }

  /** The `bytes:` line of stats (entries_bytes − read_bytes). */
  get bytesInBuffer(): number {
    return this.entriesBytes - this.readBytes
  }

  /** Size in bytes as the kernel reports it (nr_pages × BUF_PAGE_SIZE). */
  get sizeBytes(): number {
    return this.pageCount * PAGE_DATA_BYTES
  }

  /** Time stamp of the oldest page (ring_buffer_oldest_event_ts). */
  get oldestPageTs(): number {
    return this.tail === this.readerPage ? this.pageTs[this.readerPage]! : this.pageTs[this.head]!
  }

  private allocate(pages: number): void {
    // Word indices must stay below 2^30 (KvmCpuWriter relies on it); that is 4 GiB of pages.
    if (pages >= MAX_PAGES) throw new RangeError(`a CPU buffer of ${pages} pages is too large`)
    const total = pages + 1
    const buffer = new ArrayBuffer(total * PAGE_BYTES)
    this.pageCount = pages
    this.words = new Uint32Array(buffer)
    this.bytes = new Uint8Array(buffer)
    this.next = new Int32Array(total)
    this.prev = new Int32Array(total)
    this.pageTs = new Float64Array(total)
    this.pageUsed = new Int32Array(total)
    this.pageEntries = new Int32Array(total)
    this.pageClosed = new Uint8Array(total)
    this.pageGeneration = new Uint32Array(total)
    for (let p = 0; p < pages; p++) {
      this.next[p] = (p + 1) % pages
      this.prev[p] = (p + pages - 1) % pages
    }
    this.readerPage = pages
    this.next[pages] = 0
    this.prev[pages] = pages - 1
    this.head = 0
    this.readerRead = 0
    this.enterTail(0)
  }

  /** Empties every page and zeroes every counter (O_TRUNC on `trace`, a new trace_clock). */
  reset(): void {
    const pages = this.pageCount
    for (let p = 0; p <= pages; p++) this.pageGeneration[p]! += 1
    const generations = this.pageGeneration
    this.allocate(pages)
    this.pageGeneration = generations
    this.entriesBeforeTail = 0
    this.overrun = 0
    this.dropped = 0
    this.read = 0
    this.commitOverrun = 0
    this.bytesBeforeTail = 0
    this.readBytes = 0
    this.lastOverrun = 0
    this.lostEvents = 0
    this.lastStamp = 0
    this.readStamp = 0
  }

  /**
   * Reserves room for one event of `payloadBytes` at time `ts` and returns the word index of its
   * payload, or -1 if the event is refused (buffer full with overwrite off: counted as dropped).
   * The caller fills the payload and then calls commit().
   */
  reserve(payloadBytes: number, ts: number): number {
    if (payloadBytes > MAX_PAYLOAD_BYTES) return -1
    // recordLength(), inlined.
    let length = payloadBytes === 0 ? 1 : payloadBytes
    if (length > MAX_SMALL_PAYLOAD) length += 4
    length = (length + 7) & ~3
    if (length === 12) length = 16
    const last = this.lastStamp
    if (ts < last) ts = last
    let used = this.tailUsed
    let delta = ts - last
    let extend = used > 0 && delta >= DELTA_LIMIT
    if (used + length + (extend ? TIME_EXTEND_BYTES : 0) > this.tailLimit) {
      // The tail page is full or closed: move to the next page, where the event starts it.
      if (!this.moveTail()) {
        this.dropped++
        return -1
      }
      used = 0
      extend = false
    }
    let word = this.tailBase + (used >> 2)
    if (used === 0) {
      this.pageTs[this.tail] = ts
      delta = 0
    } else if (extend) {
      // Time extend: low 27 bits of the delta in the header, the rest in the next word.
      this.words[word] = TYPE_LEN_TIME_EXTEND | ((delta % DELTA_LIMIT) << 5)
      this.words[word + 1] = Math.floor(delta / DELTA_LIMIT)
      word += 2
      delta = 0
    }
    if (payloadBytes > MAX_SMALL_PAYLOAD) {
      this.words[word] = delta << 5
      this.words[word + 1] = length - 4
      word += 1
    } else {
      this.words[word] = ((length - 4) >> 2) | (delta << 5)
    }
    this.tailUsed = used + length + (extend ? TIME_EXTEND_BYTES : 0)
    this.lastStamp = ts
    return word + 1
  }

  /**
   * reserve() and the accounting of commit() in one step, for writers whose payload cannot fail
   * to be written (fixed-size records) of at most MAX_SMALL_PAYLOAD bytes: `length` is
   * recordLength(payload), computed once per call site. Returns the payload's word index or -1
   * (refused). The caller fills the payload and then calls wakeReaders() if onCommit is set.
   */
  reserveSmallCommitted(length: number, ts: number): number {
    const last = this.lastStamp
    if (ts < last) ts = last
    const used = this.tailUsed
    const delta = ts - last
    if (used !== 0 && delta < Delta.LIMIT && used + length <= this.tailLimit) {
      // The common case: the event fits on the page being written, no time extend needed.
      const word = this.tailBase + (used >> 2)
      this.words[word] = ((length - 4) >> 2) | (delta << 5)
      this.tailUsed = used + length
      this.tailEntries++
      this.lastStamp = ts
      return word + 1
    }
    // A payload of length − 4 bytes takes the same room (lengths are whole words, 12 is never one).
    const w = this.reserve(length - 4, ts)
    if (w >= 0) this.tailEntries++
    return w
  }

  /** Wakes a blocked trace_pipe reader after reserveSmallCommitted()'s payload is written. */
  wakeReaders(): void {
    const wake = this.onCommit
    if (wake !== undefined) wake()
  }

  /** Commits the event reserved last (it is on the tail page: nothing writes in between). */
  commit(): void {
    // Its bytes are already in tailUsed (entriesBytes counts them from there).
    this.tailEntries++
    const wake = this.onCommit
    if (wake !== undefined) wake()
  }

  /**
   * The writer leaves a full page. Returns false when it may not (ring full, overwrite off);
   * the page then stays closed and later events keep being refused until a reader frees a page.
   */
  private moveTail(): boolean {
    const tail = this.tail
    const onReaderPage = tail === this.readerPage
    const nextPage = this.next[tail]!
    if (!onReaderPage && nextPage === this.head) {
      if (!this.overwrite) {
        this.closeTail()
        return false
      }
      // Overwrite: the oldest page and all its events are lost.
      this.overrun += this.pageEntries[this.head]!
      this.bytesBeforeTail -= PAGE_DATA_BYTES
      this.head = this.next[this.head]!
    }
    this.closeTail()
    this.leaveTail()
    this.entriesBeforeTail += this.tailEntries
    this.bytesBeforeTail += this.tailUsed
    this.pageUsed[nextPage] = 0
    this.pageEntries[nextPage] = 0
    this.pageClosed[nextPage] = 0
    this.pageGeneration[nextPage]! += 1
    this.enterTail(nextPage)
    return true
  }

  /** Turns the rest of the tail page into padding (counted in entries_bytes, as the kernel does). */
  private closeTail(): void {
    const page = this.tail
    if (this.pageClosed[page] === 1) return
    this.pageClosed[page] = 1
    this.tailLimit = 0
    this.bytesBeforeTail += PAGE_DATA_BYTES - this.tailUsed
  }

  /**
   * Consuming read: fills `cursor` with the next unread event and returns true, or false when
   * nothing is readable. Call consume() to remove it. `cursor.lost` is the overrun since the
   * previous page swap, reported with the first event after it (the CPU:N [LOST M EVENTS] line).
   */
  peek(cursor: EventCursor): boolean {
    for (;;) {
      const page = this.readerPage
      const used = this.usedOnPage(page)
      if (this.readerRead >= used) {
        if (!this.swapReaderPage()) return false
        continue
      }
      const base = page * PAGE_WORDS + HEADER_WORDS
      const word = base + (this.readerRead >> 2)
      const header = this.words[word]!
      const typeLen = header & 31
      const delta = header >>> 5
      if (typeLen === TYPE_LEN_TIME_EXTEND) {
        this.readStamp += delta + this.words[word + 1]! * DELTA_LIMIT
        this.readerRead += TIME_EXTEND_BYTES
        continue
      }
      if (typeLen === 0) {
        cursor.word = word + 2
        cursor.payloadBytes = this.words[word + 1]! - 4
      } else {
        cursor.word = word + 1
        cursor.payloadBytes = typeLen * 4
      }
      cursor.ts = this.readStamp + delta
      cursor.lost = this.lostEvents
      return true
    }
  }

  /** Removes the event peek() returned (rb_advance_reader). */
  consume(): void {
    const page = this.readerPage
    const word = page * PAGE_WORDS + HEADER_WORDS + (this.readerRead >> 2)
    const header = this.words[word]!
    const typeLen = header & 31
    const length = typeLen === 0 ? this.words[word + 1]! + 4 : typeLen * 4 + 4
    this.readStamp += header >>> 5
    this.readerRead += length
    this.read++
    this.lostEvents = 0
    if (this.consumeLowersBytes) this.readBytes += length
  }

  /** rb_get_reader_page: trade the empty reader page for the oldest ring page. */
  private swapReaderPage(): boolean {
    if (this.tail === this.readerPage) return false
    if (this.readable === 0) return false
    const empty = this.readerPage
    const oldest = this.head
    const before = this.prev[oldest]!
    const after = this.next[oldest]!
    this.next[before] = empty
    this.prev[empty] = before
    this.next[empty] = after
    this.prev[after] = empty
    this.pageUsed[empty] = 0
    this.pageEntries[empty] = 0
    this.pageClosed[empty] = 0
    this.pageGeneration[empty]! += 1
    this.readerPage = oldest
    this.readerRead = 0
    this.head = after
    this.readStamp = this.pageTs[oldest]!
    // The old head page keeps its next pointer: a writer on it continues into the ring at `after`.
    this.lostEvents = this.overrun - this.lastOverrun
    this.lastOverrun = this.overrun
    return true
  }

  // ---- non-consuming iteration (the `trace` file) ----

  /** Positions `it` at the oldest readable event (ring_buffer_iter_reset). */
  iterReset(it: RingIterator): void {
    it.lostEvents = false
    it.done = false
    if (this.readerRead < this.usedOnPage(this.readerPage)) {
      this.iterEnter(it, this.readerPage, this.readerRead, this.readStamp)
    } else if (this.tail === this.readerPage) {
      it.done = true
    } else {
      this.iterEnter(it, this.head, 0, this.pageTs[this.head]!)
    }
  }

  private iterEnter(it: RingIterator, page: number, offset: number, ts: number): void {
    it.page = page
    it.offset = offset
    it.ts = ts
    it.generation = this.pageGeneration[page]!
  }

  /** Fills `cursor` with the iterator's current event without moving; false at the end. */
  iterPeek(it: RingIterator, cursor: EventCursor): boolean {
    for (;;) {
      if (it.done) return false
      if (this.pageGeneration[it.page] !== it.generation) {
        // The writer reused the page under us: start again from the oldest data (5.7+ behaviour).
        this.iterReset(it)
        it.lostEvents = true
        continue
      }
      const page = it.page
      if (it.offset >= this.usedOnPage(page)) {
        if (page === this.tail) {
          it.done = true
          return false
        }
        const nextPage = page === this.readerPage ? this.head : this.next[page]!
        this.iterEnter(it, nextPage, 0, this.pageTs[nextPage]!)
        continue
      }
      const word = page * PAGE_WORDS + HEADER_WORDS + (it.offset >> 2)
      const header = this.words[word]!
      const typeLen = header & 31
      const delta = header >>> 5
      if (typeLen === TYPE_LEN_TIME_EXTEND) {
        it.ts += delta + this.words[word + 1]! * DELTA_LIMIT
        it.offset += TIME_EXTEND_BYTES
        continue
      }
      if (typeLen === 0) {
        cursor.word = word + 2
        cursor.payloadBytes = this.words[word + 1]! - 4
      } else {
        cursor.word = word + 1
        cursor.payloadBytes = typeLen * 4
      }
      cursor.ts = it.ts + delta
      cursor.lost = 0
      return true
    }
  }

  /** Moves the iterator past the event iterPeek() returned. */
  iterAdvance(it: RingIterator): void {
    const word = it.page * PAGE_WORDS + HEADER_WORDS + (it.offset >> 2)
    const header = this.words[word]!
    const typeLen = header & 31
    it.ts += header >>> 5
    it.offset += typeLen === 0 ? this.words[word + 1]! + 4 : typeLen * 4 + 4
  }

  /**
   * Changes the number of ring pages, keeping the newest data; events on pages that no longer
   * fit are counted as overrun (rb_remove_pages).
   */
  resize(pages: number): void {
    if (pages === this.pageCount) return
    const entries = this.entries
    let bytes = this.entriesBytes
    // The per-page arrays hold every page's counts while pages are moved.
    this.leaveTail()
    // Collect pages holding data, oldest first: the reader page, then head … tail.
    const order: Array<number> = []
    const readerHasData = this.readerRead < this.pageUsed[this.readerPage]! || this.tail === this.readerPage
    if (this.tail !== this.readerPage) {
      for (let p = this.head; ; p = this.next[p]!) {
        order.push(p)
        if (p === this.tail) break
      }
    }
    // The ring keeps at most `pages` of them (newest); the reader page travels separately.
    while (order.length > pages) {
      const lostPage = order.shift()!
      this.overrun += this.pageEntries[lostPage]!
      bytes -= PAGE_DATA_BYTES
    }
    const old = {
      words: this.words,
      pageTs: this.pageTs,
      pageUsed: this.pageUsed,
      pageEntries: this.pageEntries,
      pageClosed: this.pageClosed,
      readerPage: this.readerPage,
      tail: this.tail,
      generations: this.pageGeneration,
      readerRead: this.readerRead,
      readStamp: this.readStamp,
    }
    const maxGeneration = old.generations.reduce((m, g) => Math.max(m, g), 0)
    this.allocate(pages)
    this.pageGeneration.fill(maxGeneration + 1)
    const copy = (from: number, to: number): void => {
      this.words.set(old.words.subarray(from * PAGE_WORDS, (from + 1) * PAGE_WORDS), to * PAGE_WORDS)
      this.pageTs[to] = old.pageTs[from]!
      this.pageUsed[to] = old.pageUsed[from]!
      this.pageEntries[to] = old.pageEntries[from]!
      this.pageClosed[to] = old.pageClosed[from]!
    }
    if (readerHasData) {
      copy(old.readerPage, this.readerPage)
      this.readerRead = old.readerRead
      this.readStamp = old.readStamp
    }
    if (old.tail === old.readerPage) {
      // The writer was on the reader page: it stays there; the ring is empty.
      this.enterTail(this.readerPage)
      this.next[this.readerPage] = 0
      this.keepTotals(entries, bytes)
      return
    }
    order.forEach((p, i) => copy(p, i))
    this.head = 0
    this.enterTail(Math.max(0, order.length - 1))
    this.next[this.readerPage] = 0
    this.keepTotals(entries, bytes)
  }

  /** Sets the counts of pages before the tail so that entries and entriesBytes are these totals. */
  private keepTotals(entries: number, bytes: number): void {
    this.entriesBeforeTail = entries - this.tailEntries
    this.bytesBeforeTail = bytes - this.tailUsed
  }
}
