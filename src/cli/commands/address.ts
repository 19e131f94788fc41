/** Parses an address the way users write them: 0x7c00, 7c00h, 31744 (decimal). */
export const parseAddress = (text: string): bigint => {
  const t = text.trim().toLowerCase().replace(/_/g, "")
  let v: bigint
  if (/^0x[0-9a-f]+$/.test(t)) v = BigInt(t)
  else if (/^[0-9][0-9a-f]*h$/.test(t)) v = BigInt(`0x${t.slice(0, -1)}`)
  else if (/^[0-9]+$/.test(t)) v = BigInt(t)
  else throw new Error(`\`${text}\` is not an address (use hex like 0x400000 or decimal)`)
  if (v >= 1n << 64n) throw new Error(`\`${text}\` does not fit in 64 bits`)
  return v
}
