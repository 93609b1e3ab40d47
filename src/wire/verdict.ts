// Wire verdicts: what a header view's checkLen() (and the checksum checks after it) says about a
// packet. Malformed input is a value on the hot path, never a throw: the engine uses the verdict
// as an index into a counter array (WIRE_VERDICT_COUNT slots) and WIRE_VERDICT_NAMES for display.
// The numbers are indexes only (drop reasons are reported by name, xmit/verdict.ts's DROP_NAMES).
// A fragment is not a verdict: the engine reassembles (wire/reassembly.ts), and what goes wrong
// there has drop reasons of its own (frag_duplicate, frag_overlap, ...).

/** The packet is well formed (so far as this layer can tell). */
export const V_OK = 0;
/** Fewer bytes than a header (or its declared length) needs. */
export const V_TRUNCATED = 1;
/** IPv4 version field is not 4. */
export const V_BAD_VERSION = 2;
/** IPv4 IHL below 5 (a header shorter than 20 bytes). */
export const V_BAD_IHL = 3;
/** IPv4 total length below the header length or beyond the bytes received. */
export const V_BAD_TOTAL_LEN = 4;
/** A header or L4 checksum does not verify. */
export const V_BAD_CHECKSUM = 5;
/** TCP data offset below 5 words or beyond the L4 length. */
export const V_BAD_DATA_OFFSET = 6;
/** Well formed, but a protocol or feature this layer does not handle. */
export const V_UNSUPPORTED = 7;

/** Any of the V_* values above. */
export type WireVerdict = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** Counter and log names, indexed by verdict. */
export const WIRE_VERDICT_NAMES: readonly string[] = [
  'ok',
  'truncated',
  'bad_version',
  'bad_ihl',
  'bad_total_len',
  'bad_checksum',
  'bad_data_offset',
  'unsupported',
];

/** How many verdicts there are: the size of a per-verdict counter array. */
export const WIRE_VERDICT_COUNT = 8;
