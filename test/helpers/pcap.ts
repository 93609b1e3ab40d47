// Read the pcap files tcpdump writes (-w), for tests that assert on-wire facts. Supports the
// classic format in either byte order, micro- or nanosecond timestamps.

import { readFileSync } from 'node:fs';

export interface PcapFile {
  /** Link type: 1 = Ethernet, 113 = Linux cooked (any), 101 = raw IP. */
  linkType: number;
  packets: Buffer[];
}

export function readPcap(path: string): PcapFile {
  const b = readFileSync(path);
  if (b.length < 24) return { linkType: 1, packets: [] };
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) {
    throw new Error(`${path}: not a pcap file`);
  }
  const u32 = (off: number) => (le ? b.readUInt32LE(off) : b.readUInt32BE(off));
  const linkType = u32(20);
  const packets: Buffer[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const caplen = u32(off + 8);
    if (off + 16 + caplen > b.length) break;
    packets.push(b.subarray(off + 16, off + 16 + caplen));
    off += 16 + caplen;
  }
  return { linkType, packets };
}

/** The IPv4 packet inside an Ethernet frame, or undefined for anything else. */
export function ipv4OfFrame(frame: Buffer): Buffer | undefined {
  if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) return undefined;
  return frame.subarray(14);
}

export function macString(b: Buffer, off = 0): string {
  return Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The dotted-quad IPv4 address at b[off]. */
export function dotted(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}
