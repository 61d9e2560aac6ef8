// Worker: searches nonces start, start+step, ... until the hash has `difficulty` leading zero bits.
self.onmessage = function (ev) {
  var job = ev.data;
  // A broken engine would otherwise spin for ever: check a known vector first.
  var abc = new Uint8Array([0x61, 0x62, 0x63]);
  if (egHex(egSha256(abc)) !== 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') {
    self.postMessage({ type: 'error', error: 'selftest' });
    return;
  }
  var puzzle = new EgPuzzle(job.challenge), d = job.difficulty, n = job.start, step = job.step;
  var tried = 0, last = Date.now();
  for (;;) {
    for (var i = 0; i < 2048; i++) {
      if (egLeadingZeroBits(puzzle.hash(n)) >= d) {
        self.postMessage({ type: 'found', nonce: String(n), tried: tried + i + 1 });
        return;
      }
      n += step;
    }
    tried += 2048;
    var now = Date.now();
    if (now - last >= 200) {
      self.postMessage({ type: 'progress', tried: tried });
      last = now;
    }
  }
};
