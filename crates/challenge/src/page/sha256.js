// SHA-256 (FIPS 180-4) in plain JavaScript, and the one-block puzzle hash SHA-256(challenge || decimal nonce).
// Plain code rather than crypto.subtle: subtle exists only in secure contexts (not on plain http to a public host)
// and its one-promise-per-hash cost is far above a 64-round loop on 16 words.
var EG_IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
var EG_K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
]);
var EG_W = new Int32Array(64);

// One compression: H (8 words) absorbs the 16-word block M.
function egCompress(H, M) {
  var W = EG_W, K = EG_K, i, x, y, t1, t2;
  for (i = 0; i < 16; i++) W[i] = M[i];
  for (i = 16; i < 64; i++) {
    x = W[i - 15];
    y = W[i - 2];
    W[i] = ((((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
      (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)) + W[i - 7] + W[i - 16]) | 0;
  }
  var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
  for (i = 0; i < 64; i++) {
    t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
      ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
      ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  H[0] = (H[0] + a) | 0; H[1] = (H[1] + b) | 0; H[2] = (H[2] + c) | 0; H[3] = (H[3] + d) | 0;
  H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + h) | 0;
}

function egLoadBlock(M, bytes, off) {
  for (var i = 0; i < 16; i++) {
    var j = off + 4 * i;
    M[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
}

// SHA-256 of a Uint8Array; returns the digest as 8 big-endian words.
function egSha256(bytes) {
  var n = bytes.length, total = (n + 9 + 63) & ~63;
  var padded = new Uint8Array(total);
  padded.set(bytes);
  padded[n] = 0x80;
  var hi = Math.floor(n / 0x20000000), lo = (n * 8) >>> 0;
  padded[total - 8] = hi >>> 24; padded[total - 7] = hi >>> 16; padded[total - 6] = hi >>> 8; padded[total - 5] = hi;
  padded[total - 4] = lo >>> 24; padded[total - 3] = lo >>> 16; padded[total - 2] = lo >>> 8; padded[total - 1] = lo;
  var H = new Int32Array(EG_IV), M = new Int32Array(16);
  for (var off = 0; off < total; off += 64) {
    egLoadBlock(M, padded, off);
    egCompress(H, M);
  }
  return H;
}

function egHex(H) {
  var s = '';
  for (var i = 0; i < H.length; i++) s += ('0000000' + (H[i] >>> 0).toString(16)).slice(-8);
  return s;
}

function egLeadingZeroBits(H) {
  for (var i = 0; i < H.length; i++) if (H[i] !== 0) return 32 * i + Math.clz32(H[i]);
  return 32 * H.length;
}

// The puzzle for one challenge: hash(nonce) reuses one block buffer, so the search allocates nothing.
function EgPuzzle(challenge) {
  this.prefix = new Uint8Array(challenge.length);
  for (var i = 0; i < challenge.length; i++) this.prefix[i] = challenge.charCodeAt(i) & 0xff;
  this.buf = new Uint8Array(64);
  this.buf.set(this.prefix);
  this.digits = new Uint8Array(20);
  this.M = new Int32Array(16);
  this.H = new Int32Array(8);
}

// nonce: a non-negative integer below 2^53, written in decimal without leading zeros.
EgPuzzle.prototype.hash = function (nonce) {
  var nd = 0, v = nonce, p = this.prefix.length, buf = this.buf, i;
  do {
    var q = Math.floor(v / 10);
    this.digits[nd++] = 48 + (v - 10 * q);
    v = q;
  } while (v > 0);
  var len = p + nd;
  if (len > 55) {
    var all = new Uint8Array(len);
    all.set(this.prefix);
    for (i = 0; i < nd; i++) all[p + i] = this.digits[nd - 1 - i];
    this.H.set(egSha256(all));
    return this.H;
  }
  for (i = 0; i < nd; i++) buf[p + i] = this.digits[nd - 1 - i];
  buf[len] = 0x80;
  for (i = len + 1; i < 62; i++) buf[i] = 0;
  buf[62] = (len * 8) >>> 8;
  buf[63] = (len * 8) & 0xff;
  egLoadBlock(this.M, buf, 0);
  this.H.set(EG_IV);
  egCompress(this.H, this.M);
  return this.H;
};
