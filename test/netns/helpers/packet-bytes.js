// Byte helpers shared by the plain-JS netns helpers (they run in namespaces without the TS build).
'use strict';

/** Dotted-quad → 4 bytes. */
function addr(dotted) {
  return Buffer.from(dotted.split('.').map(Number));
}

/** 4 bytes at buf[off] → dotted quad. */
function dotted(buf, off) {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** RFC 1071 Internet checksum over buf[off, off + len). */
function inetChecksum(buf, off, len) {
  let sum = 0;
  let i = off;
  for (; i + 1 < off + len; i += 2) sum += buf.readUInt16BE(i);
  if (i < off + len) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

module.exports = { addr, dotted, inetChecksum };
