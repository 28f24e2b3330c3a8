// camhub page: the live grid over one multiplexed connection, the full-screen view, and
// the list of other boxes. Plain ES5 with Promise and fetch, no libraries, nothing from
// any other server.
//
// Why one connection: a browser opens at most 6 HTTP/1.1 connections per host:port, so a
// grid of MJPEG <img> tiles stops loading at the 7th camera. The grid reads /mux (every
// visible tile's newest JPEG, tagged with its stream id; framing in src/http/mux.rs) with
// fetch() streaming and draws each frame into its tile's canvas. Where fetch streaming is
// missing, tiles poll /snapshot/{id} instead (short requests, a few per second).
// Tiles ask for pictures the size they are drawn at: `width=` is the widest tile
// canvas's CSS width in device pixels (the server serves the smallest rendition at least
// that wide), asked again when a resize or rotation moves it to another rendition step;
// the full-screen view plays the full-size /stream/{id}. The grid rate (`fps=`) is the
// user's, kept in localStorage.
// Untrusted text (names, errors, peers) only ever goes into textContent.
'use strict';
(function () {
  var POLL_MS = 500;           // shortest snapshot polling period per tile in the fallback
  var RATE_KEY = 'camhub.gridFps';
  var API_MS = 2000;           // /api/streams refresh
  var MAX_RECORD = 16 << 20;   // larger mux records mean a broken stream
  var $ = function (id) { return document.getElementById(id); };
  var grid = $('grid'), full = $('full'), boxes = $('boxes'), fimg = $('fimg'), rate = $('rate');
  // The server's rendition widths (rendition::LADDER_PX), so the page can tell whether a
  // new tile width would get different pictures.
  var LADDER = (document.body.dataset.ladder || '').split(',').map(Number);
  var gridPx = 0; // the width the grid asks for, in device pixels (0: not measured yet)
  var tiles = new Map(), view = 'grid', fullId = null, fromGrid = false, mux = null, debounce = 0;
  var streaming = !!(window.fetch && window.ReadableStream && window.AbortController &&
    window.TextDecoder && !/[?&]poll=1/.test(location.search));
  var decoder = window.TextDecoder ? new TextDecoder() : null;

  document.querySelectorAll('.tile').forEach(function (el) {
    var t = {
      id: el.dataset.id, el: el, canvas: el.querySelector('canvas'), visible: !window.IntersectionObserver,
      badge: el.querySelector('.badge'), fps: el.querySelector('.fps'), err: el.querySelector('.err'),
      stale: el.querySelector('.f-stale'), subDown: el.querySelector('.f-sub'),
      name: el.querySelector('.name').textContent, frames: 0, next: null, busy: false, info: null,
      kind: null, feed: null
    };
    t.ctx = t.canvas.getContext('2d');
    tiles.set(t.id, t);
    el.addEventListener('click', function (e) {
      if (e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      fromGrid = true;
      location.hash = '#/cam/' + encodeURIComponent(t.id);
    });
  });

  // ---- drawing: newest frame only, one decode at a time per tile ----------------------
  function draw(t, jpeg, kind, feed) {
    t.next = { jpeg: jpeg, kind: kind, feed: feed };
    if (!t.busy) pump(t);
  }
  function pump(t) {
    var f = t.next;
    if (!f) { t.busy = false; return; }
    t.busy = true;
    t.next = null;
    paint(t, new Blob([f.jpeg], { type: 'image/jpeg' })).then(function () {
      t.frames++;
      t.el.dataset.frames = t.frames;
      t.kind = t.el.dataset.kind = f.kind;
      t.feed = t.el.dataset.feed = f.feed;
      flags(t);
    }, function () {}).then(function () { pump(t); });
  }
  // What the picture is when it is not simply the camera's newest: an old frame (dimmed,
  // "stale", until a live one arrives), or the main stream standing in for a sub-stream
  // that is down (the grid is normally fed by the sub-stream).
  function flags(t) {
    var sub = t.info && t.info.sub;
    t.stale.hidden = t.kind !== 'stale';
    t.el.classList.toggle('dim', t.kind === 'stale');
    t.subDown.hidden = !(sub && sub.state !== 'live' && t.feed !== 'sub');
  }
  function fit(t, w, h) {
    if (t.canvas.width !== w || t.canvas.height !== h) { t.canvas.width = w; t.canvas.height = h; }
  }
  function paint(t, blob) {
    if (window.createImageBitmap) {
      return createImageBitmap(blob).then(function (b) {
        fit(t, b.width, b.height);
        t.ctx.drawImage(b, 0, 0);
        if (b.close) b.close();
      });
    }
    return new Promise(function (ok, fail) {
      var url = URL.createObjectURL(blob), img = new Image();
      img.onload = function () {
        URL.revokeObjectURL(url);
        fit(t, img.naturalWidth, img.naturalHeight);
        t.ctx.drawImage(img, 0, 0);
        ok();
      };
      img.onerror = function () { URL.revokeObjectURL(url); fail(); };
      img.src = url;
    });
  }

  // ---- the multiplexed stream -----------------------------------------------------------
  // Reads records "<id> <length> <kind> <unix-ms> <feed>\n" + JPEG until the stream ends.
  function readMux(reader, onFrame) {
    var head = new Uint8Array(128), hn = 0, body = null, bn = 0, f = null;
    function chunk(r) {
      if (r.done) return;
      var v = r.value, i = 0;
      while (i < v.length) {
        if (!body) {
          var nl = v.indexOf(10, i), end = nl < 0 ? v.length : nl;
          if (hn + end - i > head.length) throw new Error('bad mux header');
          head.set(v.subarray(i, end), hn);
          hn += end - i;
          i = end;
          if (nl < 0) break;
          i++;
          f = decoder.decode(head.subarray(0, hn)).split(' ');
          hn = 0;
          var len = +f[1];
          if (!(len > 0 && len <= MAX_RECORD)) throw new Error('bad mux length');
          body = new Uint8Array(len);
          bn = 0;
        } else {
          var n = Math.min(body.length - bn, v.length - i);
          body.set(v.subarray(i, i + n), bn);
          bn += n;
          i += n;
          if (bn === body.length) {
            var t = tiles.get(f[0]);
            if (t) { draw(t, body, f[2], f[4]); onFrame(); }
            body = null;
          }
        }
      }
      return reader.read().then(chunk);
    }
    return reader.read().then(chunk);
  }

  function openMux(ids, key, px, fps) {
    var ctl = new AbortController(), stopped = false, retryMs = 1000;
    var m = { key: key, stop: function () { stopped = true; ctl.abort(); } };
    var url = '/mux?ids=' + ids.map(encodeURIComponent).join(',') + '&fps=' + fps + (px ? '&width=' + px : '');
    document.body.dataset.mux = url;
    (function connect() {
      var got = false;
      fetch(url, { signal: ctl.signal, cache: 'no-store' }).then(function (r) {
        if (r.ok && !(r.body && r.body.getReader)) {
          // A fetch without streaming bodies: poll snapshots from now on.
          streaming = false;
          ctl.abort();
          if (mux === m) { mux = null; apply(); }
          stopped = true;
          return;
        }
        if (!r.ok) throw new Error('mux ' + r.status);
        return readMux(r.body.getReader(), function () { got = true; });
      }).catch(function () { /* retried below */ }).then(function () {
        if (stopped) return;
        retryMs = got ? 1000 : Math.min(retryMs * 2, 10000);
        setTimeout(function () { if (!stopped) connect(); }, retryMs);
      });
    })();
    return m;
  }

  // Fallback: each visible tile loads /snapshot/{id} at the grid rate, at most twice a
  // second (each is a request of its own).
  function openPoll(ids, key, px, fps) {
    var stopped = false, every = Math.max(POLL_MS, 1000 / fps);
    document.body.dataset.mux = 'poll width=' + px + ' fps=' + fps;
    ids.forEach(function (id) {
      var t = tiles.get(id);
      (function tick() {
        if (stopped) return;
        var img = new Image();
        img.onload = function () {
          if (stopped) return;
          fit(t, img.naturalWidth, img.naturalHeight);
          t.ctx.drawImage(img, 0, 0);
          t.frames++;
          t.el.dataset.frames = t.frames;
          setTimeout(tick, every);
        };
        img.onerror = function () { setTimeout(tick, 4 * every); };
        img.src = '/snapshot/' + encodeURIComponent(id) + '?' + (px ? 'width=' + px + '&' : '') + 't=' + Date.now();
      })();
    });
    return { key: key, stop: function () { stopped = true; } };
  }

  // The rendition the server serves for a width (rendition::step_for): the smallest step
  // at least that wide, 0 for full size.
  function step(px) {
    for (var i = 0; i < LADDER.length; i++) if (LADDER[i] >= px) return LADDER[i];
    return 0;
  }
  // The widest tile picture in device pixels, rounded up (0 while the grid is not laid out).
  function measure() {
    var css = 0;
    tiles.forEach(function (t) { css = Math.max(css, t.canvas.getBoundingClientRect().width); });
    // Less a hair, so that 183 CSS px at 2x reads 366, not 367 from rounding noise.
    return Math.max(0, Math.ceil(css * (window.devicePixelRatio || 1) - 0.01));
  }

  // Opens, reopens or closes the grid's frames for the tiles in view (none when hidden).
  // A new width reopens it only when it changes the rendition the tiles get.
  function apply() {
    clearTimeout(debounce);
    var ids = [];
    if (view === 'grid' && !document.hidden) {
      tiles.forEach(function (t) { if (t.visible) ids.push(t.id); });
      var now = measure();
      if (now && (!gridPx || step(now) !== step(gridPx))) gridPx = now;
    }
    // No width before the grid was measured, or above the top step (full size anyway).
    var s = gridPx ? step(gridPx) : 0, px = s ? gridPx : 0, fps = +rate.value;
    var key = ids.join(',') + ' ' + s + ' ' + fps;
    if (mux && mux.key === key) return;
    if (mux) { mux.stop(); mux = null; }
    document.body.dataset.mux = '';
    if (ids.length) mux = (streaming ? openMux : openPoll)(ids, key, px, fps);
  }
  function applySoon() { clearTimeout(debounce); debounce = setTimeout(apply, 300); }

  // ---- the grid rate: the user's choice, remembered by this browser -------------------
  try {
    var saved = localStorage.getItem(RATE_KEY);
    for (var i = 0; i < rate.options.length; i++) if (rate.options[i].value === saved) rate.value = saved;
  } catch (e) { /* storage off: the default */ }
  rate.addEventListener('change', function () {
    try { localStorage.setItem(RATE_KEY, rate.value); } catch (e) { /* this visit only */ }
    apply();
  });
  // A rotation or resize may change the tiles' size (and so the rendition they need).
  window.addEventListener('resize', applySoon);
  if (window.ResizeObserver) new ResizeObserver(function () { applySoon(); }).observe(grid);

  if (window.IntersectionObserver) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { tiles.get(e.target.dataset.id).visible = e.isIntersecting; });
      applySoon();
    }, { rootMargin: '64px' });
    tiles.forEach(function (t) { io.observe(t.el); });
  }
  document.addEventListener('visibilitychange', function () {
    fullSrc();
    if (document.hidden) apply(); else { applySoon(); refresh(); }
  });

  // ---- status from /api/streams --------------------------------------------------------
  var LABELS = {
    live: ['live', 'live'], starting: ['reconnecting', 're'], stalled: ['reconnecting', 're'],
    backoff: ['reconnecting', 're'], failed: ['failed', 'failed'], disabled: ['off', 'off']
  };
  function setBadge(el, state) {
    var l = LABELS[state] || [state, 'off'];
    el.textContent = l[0];
    el.className = 'badge b-' + l[1];
  }
  function detail(s) {
    if (s.state === 'live') return '';
    var m = s.last_error || (s.state === 'disabled' ? 'disabled in the configuration' : 'connecting…');
    if (s.retry_in_secs != null) m += ' — retrying in ' + Math.ceil(s.retry_in_secs) + ' s';
    return m;
  }
  function render(list) {
    // A camera plugged in since the page loaded: rebuild the grid (the server renders the
    // tiles), but never pull the full-screen view away from the user.
    if (view === 'grid' && list.some(function (s) { return !tiles.has(s.id); })) {
      location.reload();
      return;
    }
    list.forEach(function (s) {
      var t = tiles.get(s.id);
      if (!t) return;
      t.info = s;
      t.el.dataset.state = s.state;
      setBadge(t.badge, s.state);
      t.fps.textContent = s.state === 'live' && s.fps > 0 ? Math.round(s.fps) + ' fps' : '';
      t.err.textContent = detail(s);
      flags(t);
    });
    if (view === 'full') renderFull();
  }
  var apiTimer = 0, apiBusy = false;
  function refresh() {
    clearTimeout(apiTimer);
    if (document.hidden || apiBusy) return;
    apiBusy = true;
    fetch('/api/streams', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (list) { if (Array.isArray(list)) render(list); }, function () {})
      .then(function () { apiBusy = false; apiTimer = setTimeout(refresh, API_MS); });
  }

  // ---- views: #/ grid, #/cam/<id> full screen, #/boxes --------------------------------
  function renderFull() {
    var t = tiles.get(fullId);
    $('fname').textContent = t.name;
    if (t.info) {
      setBadge($('fbadge'), t.info.state);
      $('ffps').textContent = t.info.state === 'live' && t.info.fps > 0 ? Math.round(t.info.fps) + ' fps' : '';
      $('ferr').textContent = detail(t.info);
    } else {
      $('fbadge').textContent = t.badge.textContent;
      $('fbadge').className = t.badge.className;
    }
  }
  function stamp() {
    var d = new Date(), p = function (n) { return (n < 10 ? '0' : '') + n; };
    return d.getFullYear() + p(d.getMonth() + 1) + p(d.getDate()) + '-' +
      p(d.getHours()) + p(d.getMinutes()) + p(d.getSeconds());
  }
  $('fsnap').addEventListener('click', function () {
    this.download = fullId + '-' + stamp() + '.jpg';
  });
  $('back').addEventListener('click', function (e) {
    if (fromGrid) { e.preventDefault(); history.back(); }
  });

  var peersTimer = 0;
  function loadPeers() {
    var ul = $('peers');
    clearTimeout(peersTimer);
    fetch('/api/peers', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : []; })
      .catch(function () { return []; })
      .then(function (peers) {
        if (view !== 'boxes') return;
        ul.textContent = '';
        (Array.isArray(peers) ? peers : []).forEach(function (p) {
          var url = null;
          try {
            var u = new URL(p.url || ('http://' + p.host + ':' + p.port + '/'), location.href);
            if (u.protocol === 'http:' || u.protocol === 'https:') url = u.href;
          } catch (e) { /* not a usable address */ }
          if (!url) return;
          var li = document.createElement('li'), a = document.createElement('a'), s = document.createElement('small');
          a.href = url;
          a.textContent = p.name || url;
          s.textContent = url;
          li.appendChild(a);
          li.appendChild(s);
          ul.appendChild(li);
        });
        $('nopeers').hidden = ul.children.length > 0;
        peersTimer = setTimeout(function () { if (view === 'boxes') loadPeers(); }, 5000);
      });
  }

  function route() {
    var m = /^#\/cam\/(.+)$/.exec(location.hash), id = null;
    try { id = m && decodeURIComponent(m[1]); } catch (e) { /* a mangled link: the grid */ }
    var next = id && tiles.has(id) ? 'full' : location.hash === '#/boxes' ? 'boxes' : 'grid';
    if (next === 'full') {
      if (fullId !== id) {
        fullId = id;
        fimg.alt = tiles.get(id).name;
        $('fsnap').href = '/snapshot/' + encodeURIComponent(id);
        $('fsnap').download = id + '.jpg';
      }
    } else {
      fullId = null;
      fromGrid = false;
    }
    view = next;
    grid.hidden = view !== 'grid';
    full.hidden = view !== 'full';
    boxes.hidden = view !== 'boxes';
    $('nav-cams').setAttribute('aria-current', view === 'boxes' ? 'false' : 'page');
    $('nav-boxes').setAttribute('aria-current', view === 'boxes' ? 'page' : 'false');
    document.body.dataset.view = view;
    if (view === 'full') renderFull();
    if (view === 'boxes') loadPeers();
    fullSrc();
    apply();
  }
  // The full-screen picture streams only while shown; removing src ends the MJPEG
  // request and frees its connection.
  function fullSrc() {
    var url = view === 'full' && !document.hidden && '/stream/' + encodeURIComponent(fullId);
    if (!url) fimg.removeAttribute('src');
    else if (fimg.getAttribute('src') !== url) fimg.src = url;
  }
  window.addEventListener('hashchange', route);
  route();
  refresh();
})();
