// camhub page: the live grid over one multiplexed connection, the full-screen view, the
// list of other boxes, and the admin's views (add, test, edit and remove cameras). Plain
// ES5 with Promise and fetch, no libraries, nothing from any other server.
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
// The set of tiles follows /api/streams: a camera added (here or elsewhere) gets a tile,
// a removed one loses it, and a mux record of kind `gone` (a stream removed or replaced,
// e.g. edited) makes the page look again and reopen the mux, all without a reload.
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

  var io = window.IntersectionObserver && new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { var t = tiles.get(e.target.dataset.id); if (t) t.visible = e.isIntersecting; });
    applySoon();
  }, { rootMargin: '64px' });
  var reopen = false;  // a stream of the mux went away: reopen it after the next look
  var justAdded = null; // the camera this page just saved: its new tile is shown

  function setup(el) {
    var t = {
      id: el.dataset.id, el: el, canvas: el.querySelector('canvas'), visible: !io,
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
    if (io) io.observe(el);
  }
  document.querySelectorAll('#grid .tile').forEach(setup);
  // A tile for a camera that appeared since the page loaded (the server's markup).
  function addTile(s) {
    var el = $('tpl').content.firstElementChild.cloneNode(true), c = el.querySelector('canvas');
    el.id = 'tile-' + s.id;
    el.dataset.id = s.id;
    el.href = '/stream/' + encodeURIComponent(s.id);
    el.title = el.querySelector('.name').textContent = s.name;
    if (s.width && s.height) { c.width = s.width; c.height = s.height; }
    grid.appendChild(el);
    setup(el);
  }
  function dropTile(t) {
    if (io) io.unobserve(t.el);
    grid.removeChild(t.el);
    tiles.delete(t.id);
    if (fullId === t.id) location.hash = '#/';
  }

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
          if (len === 0 && f[2] === 'gone') { reopen = true; refresh(); continue; }
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
        if (r.status === 404) refresh(); // a stream went away: look again
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
    // Cameras added or removed since the last look: tiles follow, in the server's order.
    var ids = {}, changed = false;
    list.forEach(function (s) {
      ids[s.id] = 1;
      if (!tiles.has(s.id)) { addTile(s); changed = true; }
    });
    tiles.forEach(function (t) { if (!ids[t.id]) { dropTile(t); changed = true; } });
    if (changed) list.forEach(function (s) { grid.appendChild(tiles.get(s.id).el); });
    $('none').hidden = tiles.size > 0;
    list.forEach(function (s) {
      var t = tiles.get(s.id);
      t.info = s;
      if (t.name !== s.name) t.el.title = t.el.querySelector('.name').textContent = t.name = s.name;
      t.el.dataset.state = s.state;
      setBadge(t.badge, s.state);
      t.fps.textContent = s.state === 'live' && s.fps > 0 ? Math.round(s.fps) + ' fps' : '';
      t.err.textContent = detail(s);
      flags(t);
    });
    if (justAdded && tiles.has(justAdded) && view === 'grid') {
      tiles.get(justAdded).el.scrollIntoView({ block: 'nearest' });
      justAdded = null;
    }
    if (reopen && mux) { mux.stop(); mux = null; }
    reopen = false;
    if (changed || !mux) apply();
    if (view === 'full') renderFull();
  }
  var apiTimer = 0, apiBusy = false, apiAgain = false;
  function refresh() {
    clearTimeout(apiTimer);
    if (apiBusy) { apiAgain = true; return; }
    if (document.hidden) return;
    apiBusy = true;
    apiAgain = false;
    fetch('/api/streams', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (list) { if (Array.isArray(list)) render(list); }, function () {})
      .then(function () {
        apiBusy = false;
        if (apiAgain) refresh(); else apiTimer = setTimeout(refresh, API_MS);
      });
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

  // ---- the admin's views: #/add, #/manage, #/edit/<id> ---------------------------------
  // First the admin password is set (the first visit) or asked for (no session cookie),
  // then the view. Camera passwords only ever go from the form to the API: the forms are
  // cleared once saved and the API never sends one back.
  var aview = null, aarg = null, cams = [], tested = null, onvif = null, named = false, testing = 0;
  var SOURCES = { file: 'from camhub.toml', saved: 'added here', discovered: 'plugged in', builtin: 'test pattern' };
  function show(id, on) { $(id).hidden = !on; }
  function say(el, text) { (el.tagName === 'FORM' ? el.querySelector('.msg') : el).textContent = text || ''; }
  // A JSON request to the admin API: the answer, or an Error with the server's words.
  function api(method, path, body) {
    var init = { method: method, cache: 'no-store', credentials: 'same-origin' };
    if (body) { init.headers = { 'Content-Type': 'application/json' }; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.ok) return j || {};
        var e = new Error((j && j.error) || 'camhub answered ' + r.status);
        e.status = r.status;
        if (r.status === 429) e.message += ' (try again in ' + (r.headers.get('Retry-After') || 60) + ' s)';
        throw e;
      });
    });
  }
  // Shows a failed request in `where`, or asks for the login again when the session ended.
  function failed(where) {
    return function (e) {
      if (e.status === 401) { gate(); return; }
      say(where, e.status ? e.message : 'No answer from camhub: is it running?');
    };
  }
  function openAdmin(which, arg) {
    aview = which;
    aarg = arg;
    $('atitle').textContent = { add: 'Add camera', manage: 'Manage cameras', edit: 'Edit camera' }[which];
    $('aback').href = which === 'edit' ? '#/manage' : '#/';
    ['setpw', 'login', 'add', 'manage', 'edit'].forEach(function (id) { show(id, false); });
    say($('amsg'), '');
    $('cams').textContent = ''; // nothing stale to tap while the list loads
    if (which === 'add') resetAdd();
    gate();
  }
  function gate() {
    api('GET', '/api/admin').then(function (s) {
      var p = [s.problem, s.state_problem].filter(Boolean).join('\n');
      show('problem', !!p);
      $('ptext').textContent = p;
      show('over', !!s.state_problem && s.logged_in);
      if (!s.password_set || !s.logged_in) {
        ['add', 'manage', 'edit'].forEach(function (id) { show(id, false); });
        var f = s.password_set ? 'login' : 'setpw';
        show(f, true);
        $(s.password_set ? 'lpw' : 'pw1').focus();
      } else enter();
    }, failed($('amsg')));
  }
  function enter() {
    show('setpw', false);
    show('login', false);
    show(aview, aview !== 'edit'); // the edit form once filled
    if (aview === 'add') discover();
    else loadCams();
  }
  function form(id, submit) {
    $(id).addEventListener('submit', function (e) { e.preventDefault(); say(this, ''); submit(this); });
  }
  form('setpw', function (f) {
    if ($('pw1').value !== $('pw2').value) return say(f, 'The two passwords differ.');
    api('POST', '/api/admin/password', { password: $('pw1').value }).then(function () {
      $('pw1').value = $('pw2').value = '';
      gate();
    }, function (e) { if (e.status === 409) gate(); else failed(f)(e); });
  });
  form('login', function (f) {
    api('POST', '/api/admin/login', { password: $('lpw').value }).then(function () {
      $('lpw').value = '';
      gate();
    }, function (e) { say(f, e.status === 401 ? 'Wrong password.' : e.message); });
  });
  $('over').addEventListener('click', function () {
    api('POST', '/api/state/start-over').then(function (r) {
      show('over', false);
      $('ptext').textContent = 'Started over with no saved cameras.' +
        (r.kept_aside ? ' The old file is kept as ' + r.kept_aside : '');
      refresh();
    }, failed($('ptext')));
  });

  // -- add: what was found on the network, or an address; test; name; save --
  function resetAdd() {
    ['url', 'user', 'pass', 'name', 'opw'].forEach(function (id) { $(id).value = ''; });
    show('result', false);
    show('onvif', false);
    show('found', false);
    say($('tmsg'), '');
    tested = onvif = null;
    named = false;
    testing++;
  }
  // Lists what discovery finds on the network, or at one IP address (a camera on another
  // subnet), when this box has discovery; the address form stays either way.
  function discover(ip) {
    var asked = aview, ul = $('devs'), looking = ip ? 0 : setTimeout(function () {
      // Listening takes a few seconds: say so (an answer that it is off comes at once).
      ul.textContent = '';
      ul.appendChild(item('Looking on your network…'));
      show('found', aview === asked);
    }, 400);
    api('GET', '/api/discover' + (ip ? '?address=' + encodeURIComponent(ip) : '')).then(function (d) {
      clearTimeout(looking);
      if (aview !== asked || !Array.isArray(d.devices)) return;
      if (!ip || !ul.querySelector('button')) ul.textContent = '';
      d.devices.forEach(function (dev) {
        var key = dev.kind + ' ' + dev.address;
        if (![].some.call(ul.children, function (li) { return li.dataset.key === key; })) {
          ul.appendChild(device(dev)).dataset.key = key;
        }
      });
      if (!ul.children.length) ul.appendChild(item('Nothing found: enter an address below.'));
      show('found', true);
    }, function () {
      // No discovery here (off, or none on this box).
      clearTimeout(looking);
      if (!ip) show('found', false);
    });
  }
  function item(title, sub, el) {
    var li = document.createElement('li'), b = document.createElement(el || 'div');
    if (el === 'button') b.type = 'button';
    b.className = 'item';
    var t = document.createElement('span');
    t.className = 't';
    t.textContent = title;
    b.appendChild(t);
    (sub || []).forEach(function (line) {
      if (!line) return;
      var s = document.createElement('small');
      s.textContent = line;
      b.appendChild(s);
    });
    li.appendChild(b);
    return li;
  }
  function device(dev) {
    var li = item(dev.name || dev.address, [[dev.hardware, dev.address].filter(Boolean).join(' · '),
      dev.added ? 'already added' : ''], 'button');
    li.firstChild.addEventListener('click', function () {
      if (dev.kind === 'onvif') {
        onvif = { dev: dev };
        $('oname').textContent = dev.name || dev.address;
        $('ouser').value = $('ouser').value || 'admin';
        show('oprof', false);
        say($('onvif'), '');
        show('onvif', true);
        $('opw').focus();
        $('onvif').scrollIntoView({ block: 'nearest' });
      } else if (dev.kind === 'camhub') {
        // Another camhub: one row per stream under it.
        if (li.childNodes.length > 1) return;
        var ul = document.createElement('ul'), streams = dev.streams || [];
        ul.className = 'list';
        streams.forEach(function (s) {
          var sli = item(s.name || s.id, [s.url], 'button');
          sli.firstChild.addEventListener('click', function () { use(s.url, s.name); });
          ul.appendChild(sli);
        });
        if (!streams.length) ul.appendChild(item('It did not list its cameras.'));
        li.appendChild(ul);
      } else if (dev.url) use(dev.url, dev.name);
    });
    return li;
  }
  // Fills the address form with a found URL and tests it.
  function use(url, name) {
    onvif = null;
    show('onvif', false);
    $('url').value = url;
    suggest(name);
    runTest();
  }
  function suggest(name) { if (!named && name) $('name').value = name; }
  form('onvif', function (f) {
    // The device service URL it announced carries the ONVIF port (often 8000 or 8899, not
    // 80); a link-local one has a zone id the server cannot use, so the bare address then.
    var o = onvif, x = o.dev.xaddr, addr = x && x.indexOf('%25') < 0 ? x : o.dev.address;
    var creds = { address: addr, username: $('ouser').value, password: $('opw').value };
    say(f, 'Asking the camera…');
    api('POST', '/api/onvif/streams', creds).then(function (r) {
      if (!r.ok) return say(f, r.reason);
      say(f, '');
      o.profiles = r.profiles || [];
      ['omain', 'osub'].forEach(function (id, k) {
        var sel = $(id), pick = k ? r.sub : r.main;
        sel.textContent = '';
        if (k) sel.appendChild(new Option('none (the main stream)', ''));
        o.profiles.forEach(function (p, i) {
          var o2 = new Option([p.name, p.codec, p.width + '×' + p.height, p.fps ? p.fps + ' fps' : '']
            .filter(Boolean).join(' · ') + (p.supported ? '' : ' (not supported)'), i);
          o2.disabled = !p.supported;
          sel.appendChild(o2);
        });
        sel.value = pick == null ? '' : pick;
      });
      show('oprof', true);
      var d = r.device || {};
      // The name the camera announces (its ONVIF name scope) is the one the user tapped.
      suggest(o.dev.name || [d.manufacturer, d.model].filter(Boolean).join(' '));
      onvifTest();
    }, failed(f));
  });
  function onvifTest() {
    var p = onvif.profiles[$('omain').value];
    if (!p) return;
    $('url').value = p.rtsp_url;
    $('user').value = $('ouser').value;
    $('pass').value = $('opw').value;
    runTest();
  }
  $('omain').addEventListener('change', onvifTest);
  // Typing in the address or login means another test is needed before saving.
  ['url', 'user', 'pass'].forEach(function (id) {
    $(id).addEventListener('input', function () { tested = null; show('result', false); });
  });
  $('name').addEventListener('input', function () { named = true; });
  form('manual', runTest);
  // The picture, its facts and Save in view once the preview has its size.
  function saveInView() { $('save').scrollIntoView({ block: 'nearest' }); }
  $('preview').addEventListener('load', saveInView);
  function runTest() {
    var input = $('url').value.trim(), n = ++testing, url = input.indexOf('://') > 0;
    if (!input) return;
    $('test').disabled = true;
    $('tmsg').className = 'msg';
    tested = null;
    show('result', false);
    say($('tmsg'), 'Testing… (up to 10 s)');
    // An IP address may also be an ONVIF camera: ask it too (it joins the found list).
    var ip = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$|^\[([0-9a-f:]+)\]/i.exec(input);
    if (ip) discover(ip[1] || ip[2]);
    api('POST', '/api/cameras/test', { url: input, username: $('user').value, password: $('pass').value })
      .then(function (r) {
        if (n !== testing) return;
        var img = $('preview'), ok = r.ok && /^data:image\/jpeg;base64,/.test(r.snapshot);
        say($('tmsg'), ok ? 'It works.' : r.reason || 'That did not work.');
        $('tmsg').className = ok ? 'msg ok' : 'msg';
        // A bare address is saved as the URL the test found; a URL as typed.
        if (ok || url) tested = url || !r.url ? input : r.url;
        if (ok) {
          img.src = r.snapshot;
          $('info').textContent = [r.codec && r.codec.toUpperCase(), r.width + '×' + r.height,
            r.fps ? Math.round(r.fps) + ' fps' : ''].filter(Boolean).join(' · ') +
            (tested !== input ? '\nFound at ' + tested : '') +
            (onvif && onvif.profiles && $('osub').value ? '\nThe grid uses the sub-stream: ' +
              $('osub').selectedOptions[0].textContent : '');
        }
        img.hidden = !ok;
        if (!ok) $('info').textContent = 'You can save it anyway: camhub keeps trying until it answers.';
        $('save').textContent = ok ? 'Save' : 'Save anyway';
        if (!$('name').value) suggest((/^(?:\w+:\/\/)?(?:[^@\/]*@)?(\[[^\]]*\]|[^\/:?#]+)/.exec(input) || [])[1]);
        show('result', !!tested);
        if (tested && !ok) saveInView();
      }, failed($('tmsg')))
      .then(function () { if (n === testing) $('test').disabled = false; });
  }
  form('result', function (f) {
    var body = { name: $('name').value.trim(), url: tested }, o = onvif;
    if ($('user').value) body.username = $('user').value;
    if ($('pass').value) body.password = $('pass').value;
    if (o && o.profiles && o.profiles[$('omain').value] && o.profiles[$('omain').value].rtsp_url === tested) {
      var sub = o.profiles[$('osub').value];
      if (sub && sub !== o.profiles[$('omain').value]) body.sub_url = sub.rtsp_url;
    }
    $('save').disabled = true;
    api('POST', '/api/cameras', body).then(function (cam) {
      ['pass', 'opw'].forEach(function (id) { $(id).value = ''; });
      justAdded = cam.id;
      location.replace('#/');
      refresh();
    }, failed(f)).then(function () { $('save').disabled = false; });
  });

  // -- manage: every camera with its source; saved ones can be changed --
  function loadCams() {
    api('GET', '/api/cameras').then(function (d) {
      cams = d.cameras || [];
      if (aview === 'edit') return fillEdit();
      var ul = $('cams');
      ul.textContent = '';
      cams.forEach(function (c) {
        var li = item(c.name, [SOURCES[c.source] + (c.enabled ? '' : ' · off') + (c.state ? ' · ' + c.state : ''),
          c.url, c.read_only && 'Read-only: ' + c.read_only]);
        li.dataset.id = c.id;
        if (!c.read_only) li.firstChild.appendChild(actions(c));
        ul.appendChild(li);
      });
    }, failed($('amsg')));
  }
  function button(text, cls, click) {
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn ' + cls;
    b.textContent = text;
    b.addEventListener('click', click);
    return b;
  }
  function change(c, how, body) {
    return api(how, '/api/cameras/' + encodeURIComponent(c.id), body).then(function () {
      loadCams();
      refresh();
    }, failed($('amsg')));
  }
  function actions(c) {
    var row = document.createElement('div');
    row.className = 'acts';
    row.appendChild(button('Edit', 'edit', function () { location.hash = '#/edit/' + encodeURIComponent(c.id); }));
    row.appendChild(button(c.enabled ? 'Disable' : 'Enable', 'toggle', function () {
      change(c, 'PUT', { enabled: !c.enabled });
    }));
    row.appendChild(button('Remove', 'danger', function () {
      // Asked on the page: a dialog would block the page (and its tiles) while open.
      row.textContent = '';
      var q = document.createElement('span');
      q.textContent = 'Remove “' + c.name + '”?';
      row.appendChild(q);
      row.appendChild(button('Remove', 'danger yes', function () { change(c, 'DELETE'); }));
      row.appendChild(button('Keep', 'no', loadCams));
    }));
    return row;
  }

  // -- edit: keys the user changed are sent; an empty password field keeps the saved one --
  var EDIT = { ename: 'name', eurl: 'url', esub: 'sub_url', euser: 'username', esuser: 'sub_username' };
  function fillEdit() {
    var c = cams.filter(function (c) { return c.id === aarg; })[0];
    show('edit', !!c && !c.read_only);
    if (!c) return say($('amsg'), 'No such camera.');
    if (c.read_only) return say($('amsg'), 'Read-only: ' + c.read_only);
    $('atitle').textContent = 'Edit “' + c.name + '”';
    for (var id in EDIT) $(id).value = c[EDIT[id]] || '';
    $('epass').value = $('espass').value = '';
    $('epass').placeholder = c.has_password ? 'unchanged' : 'none';
    $('espass').placeholder = c.has_sub_password ? 'unchanged' : 'as above';
    $('eon').checked = c.enabled;
  }
  form('edit', function (f) {
    var c = cams.filter(function (c) { return c.id === aarg; })[0], body = {}, n = 0;
    if (!c) return;
    for (var id in EDIT) {
      var v = $(id).value.trim();
      if (v !== (c[EDIT[id]] || '')) { body[EDIT[id]] = v; n++; }
    }
    if ($('epass').value) { body.password = $('epass').value; n++; }
    if ($('espass').value) { body.sub_password = $('espass').value; n++; }
    if ($('eon').checked !== c.enabled) { body.enabled = $('eon').checked; n++; }
    if (!n) return location.replace('#/manage');
    api('PUT', '/api/cameras/' + encodeURIComponent(c.id), body).then(function () {
      $('epass').value = $('espass').value = '';
      location.replace('#/manage');
      refresh();
    }, failed(f));
  });

  function route() {
    var h = location.hash, m = /^#\/cam\/(.+)$/.exec(h), a = /^#\/(add|manage|edit)(?:\/(.+))?$/.exec(h), id = null, arg = null;
    try {
      id = m && decodeURIComponent(m[1]);
      arg = a && a[2] && decodeURIComponent(a[2]);
    } catch (e) { /* a mangled link: the grid */ }
    var next = id && tiles.has(id) ? 'full' : a ? 'admin' : h === '#/boxes' ? 'boxes' : 'grid';
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
    $('admin').hidden = view !== 'admin';
    $('nav-cams').setAttribute('aria-current', view === 'grid' || view === 'full' ? 'page' : 'false');
    $('nav-boxes').setAttribute('aria-current', view === 'boxes' ? 'page' : 'false');
    document.body.dataset.view = view;
    if (view === 'full') renderFull();
    if (view === 'boxes') loadPeers();
    if (view === 'admin') openAdmin(a[1], arg);
    else aview = null;
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
