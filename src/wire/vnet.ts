// The virtio_net_hdr (virtio 1.x "struct virtio_net_hdr", 10 bytes, little-endian on every Linux
// host lvs-ts runs on) that a TUN opened with IFF_VNET_HDR puts in front of every packet it
// hands over and expects in front of every packet written to it; a packet socket with
// PACKET_VNET_HDR expects it in front of every frame sent.
//
//   0        1          2            4            6              8               10
//   +--------+----------+------------+------------+--------------+---------------+
//   | flags  | gso_type |  hdr_len   |  gso_size  |  csum_start  |  csum_offset  |
//   +--------+----------+------------+------------+--------------+---------------+
//
// flags NEEDS_CSUM: the L4 checksum is partial. The field at csum_start + csum_offset holds the
// folded, uncomplemented pseudo-header sum; whoever finishes it sums the bytes from csum_start
// to the end (that field included) and stores the complement. gso_type TCPV4: one large TCP
// segment that stands for several of at most gso_size payload bytes each; hdr_len is the length
// of the headers each segment repeats (a hint). Offsets count from the first byte after this
// header: the IPv4 header on a TUN, the Ethernet header on a packet socket.

export const VNET_HDR_LEN = 10;

export const VNET = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
} as const;

/**
 * flags: the checksum at csum_start + csum_offset is partial and must be completed. (The other
 * flag, DATA_VALID = 2, says a received checksum was verified; lvs-ts neither needs nor sends it.)
 */
export const VNET_F_NEEDS_CSUM = 1;

/**
 * gso_type values lvs-ts meets: NONE, TCPV4 (the only one it enables with TUN_F_TSO4) and UDP
 * (USO, never enabled: refused if seen). TCPV6 = 4 and the ECN bit 0x80 are not enabled either.
 */
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;

/** Write a virtio_net_hdr at buf[off]. */
export function writeVnetHdr(
  buf: Buffer,
  off: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  buf[off + VNET.FLAGS] = flags;
  buf[off + VNET.GSO_TYPE] = gsoType;
  buf.writeUInt16LE(hdrLen, off + VNET.HDR_LEN);
  buf.writeUInt16LE(gsoSize, off + VNET.GSO_SIZE);
  buf.writeUInt16LE(csumStart, off + VNET.CSUM_START);
  buf.writeUInt16LE(csumOffset, off + VNET.CSUM_OFFSET);
}
