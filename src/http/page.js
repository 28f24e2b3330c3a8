// camhub page: the live grid over one multiplexed connection, the full-screen view, and
// the list of other boxes. Plain ES5 with Promise and fetch, no libraries, nothing from
// any other server.
//
// Why one connection: a browser opens at most 6 HTTP/1.1 connections per host:port, so a
// grid of MJPEG <img> tiles stops loading at the 7th camera. The grid reads /mux (every
// visible tile's newest JPEG, tagged with its stream id; framing in src/http/mux.rs) with
// fetch() streaming and draws each frame into its tile's canvas. Where fetch streaming is
// missing, tiles poll /snapshot/{id} instead (short requests, a few per second).
// Untrusted text (names, errors, peers) only ever goes into textContent.
'use strict';
(function () {
  var POLL_MS = 500;           // snapshot polling period per tile in the fallback
  var API_MS = 2000;           // /api/streams refresh
  var MAX_RECORD = 16 << 20;   // larger mux records mean a broken stream
  var $ = function (id) { return document.getElementById(id); };
  var grid = $('grid'), full = $('full'), boxes = $('boxes'), fimg = $('fimg');
  var tiles = new Map(), view = 'grid', fullId = null, fromGrid = false, mux = null, debounce = 0;
  var streaming = !!(window.fetch && window.ReadableStream && window.AbortController &&
    window.TextDecoder && !/[?&]poll=1/.test(location.search));
  var decoder = window.TextDecoder ? new TextDecoder() : null;

  document.querySelectorAll('.tile').forEach(function (el) {
    var t = {
      id: el.dataset.id, el: el, canvas: el.querySelector('canvas'), visible: !window.IntersectionObserver,
      badge: el.querySelector('.badge'), fps: el.querySelector('.fps'), err: el.querySelector('.err'),
      name: el.querySelector('.name').textContent, frames: 0, next: null, busy: false, info: null
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
  function draw(t, jpeg) {
    t.next = jpeg;
    if (!t.busy) pump(t);
  }
  function pump(t) {
    if (!t.next) { t.busy = false; return; }
    t.busy = true;
    var blob = new Blob([t.next], { type: 'image/jpeg' });
    t.next = null;
    paint(t, blob).then(function () {
      t.frames++;
      t.el.dataset.frames = t.frames;
    }, function () {}).then(function () { pump(t); });
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
  // Reads records "<id> <length> <kind> <unix-ms>\n" + JPEG until the stream ends.
  function readMux(reader, onFrame) {
    var head = new Uint8Array(128), hn = 0, body = null, bn = 0, id = '';
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
          var f = decoder.decode(head.subarray(0, hn)).split(' ');
          hn = 0;
          id = f[0];
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
            var t = tiles.get(id);
            if (t) { draw(t, body); onFrame(); }
            body = null;
          }
        }
      }
      return reader.read().then(chunk);
    }
    return reader.read().then(chunk);
  }

  function openMux(ids, key) {
    var ctl = new AbortController(), stopped = false, retryMs = 1000;
    var m = { key: key, stop: function () { stopped = true; ctl.abort(); } };
    // No fps: each tile gets the server's grid rate (DEFAULT_TILE_FPS in mux.rs).
    var url = '/mux?ids=' + ids.map(encodeURIComponent).join(',');
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

  // Fallback: each visible tile loads /snapshot/{id} a couple of times a second.
  function openPoll(ids, key) {
    var stopped = false;
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
          setTimeout(tick, POLL_MS);
        };
        img.onerror = function () { setTimeout(tick, 4 * POLL_MS); };
        img.src = '/snapshot/' + encodeURIComponent(id) + '?t=' + Date.now();
      })();
    });
    return { key: key, stop: function () { stopped = true; } };
  }

  // Opens, reopens or closes the grid's frames for the tiles in view (none when hidden).
  function apply() {
    clearTimeout(debounce);
    var ids = [];
    if (view === 'grid' && !document.hidden) {
      tiles.forEach(function (t) { if (t.visible) ids.push(t.id); });
    }
    var key = ids.join(',');
    if (mux && mux.key === key) return;
    if (mux) { mux.stop(); mux = null; }
    if (ids.length) mux = (streaming ? openMux : openPoll)(ids, key);
    document.body.dataset.mux = key;
  }
  function applySoon() { clearTimeout(debounce); debounce = setTimeout(apply, 300); }

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
