// The byte pattern the lab's HTTP servers serve at /bytes/N: a fixed pseudo-random sequence, so
// a test can check a transfer byte for byte without shipping the data.
'use strict';

/** @param {number} n @returns {Buffer} */
function pattern(n) {
  const b = Buffer.alloc(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

module.exports = { pattern };
