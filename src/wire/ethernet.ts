// Ethernet II header (IEEE 802.3, DIX framing), as a DR frame carries it in front of the
// unchanged IP packet on a packet socket:
//
//   0                 6                 12          14
//   +-----------------+-----------------+-----------+
//   | destination MAC |   source MAC    | EtherType |
//   +-----------------+-----------------+-----------+

/** Byte offsets of the Ethernet header fields, and the header size. */
export const ETH = {
  DST: 0,
  SRC: 6,
  ETHERTYPE: 12,
  HEADER: 14,
} as const;

/** Bytes in a MAC address (the kernel's ETH_ALEN). */
export const ETH_ALEN = 6;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;

/**
 * A new 14-byte Ethernet header: to `dst`, from `src` (the first 6 bytes of each), carrying
 * `ethertype` (IPv4 unless told). The control plane builds one per DR dest when its MAC is
 * learnt; the data path copies it in front of every frame.
 */
export function ethernetHeader(dst: Buffer, src: Buffer, ethertype = ETHERTYPE_IPV4): Buffer {
  const h = Buffer.alloc(ETH.HEADER);
  dst.copy(h, ETH.DST, 0, ETH_ALEN);
  src.copy(h, ETH.SRC, 0, ETH_ALEN);
  h.writeUInt16BE(ethertype, ETH.ETHERTYPE);
  return h;
}
