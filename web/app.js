// tinhieu dashboard: REST for the initial state, /api/v1/ws (or SSE /api/v1/stream) for
// what happens next. Plain ES module, no build step; the chart library is the standalone
// build of lightweight-charts (global LightweightCharts, loaded before this module).
import { currentLang, setLang, t, translate } from './i18n.js';

const API = '/api/v1';
const MAX_BARS = 1000; // candles kept per chart
const MAX_ORDERS = 50; // rows of the orders table
const MAX_ALERTS = 50;
const MAX_MARKERS = 300;
// A marker's text (action and confidence, fill and price) is shown only where it has room:
// from the newest marker back, a label that would overlap the last one kept is left out (the
// marker keeps its shape and colour; the prices are in the orders table). Approximate width
// of a label's character at the chart's 12 px font, and the gap kept between two labels:
const MARKER_CHAR_PX = 7;
const MARKER_GAP_PX = 6;
const FLUSH_MS = 150; // live messages are applied in batches (a replay sends thousands)
const MONITOR_MS = 15000;

const LC = window.LightweightCharts;
const cards = new Map(); // symbol -> card state
const orders = []; // newest first
const alerts = []; // newest first
const pending = []; // live messages waiting for the next flush
let flushTimer = null;
let monitorTimer = null;
let streamKind = null;
let subscribedBefore = false;

// --- small helpers -------------------------------------------------------------------
function locale() { return currentLang() === 'vi' ? 'vi-VN' : 'en-US'; }

function num(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return '–';
  return Number(value).toLocaleString(locale(), {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}

function price(value) {
  const v = Number(value);
  if (!Number.isFinite(v) || v === 0) return '–';
  return num(v, v >= 100 ? 2 : v >= 1 ? 4 : 6);
}

function pct(value) { return value === null || value === undefined ? '–' : `${num(100 * value, 1)} %`; }

function when(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString(locale(), {
    timeZone: 'UTC', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }) + ' UTC';
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

function pathOf(symbol) { return symbol.replace('/', '-'); }

function secs(ms) { return Math.floor(Number(ms) / 1000); }

async function getJSON(path) {
  const resp = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (resp.status === 401) { // the session ended (token changed): back to the login form
    window.location.assign('/');
    throw new Error('unauthorized');
  }
  if (!resp.ok) return null;
  return resp.json();
}

// --- one card per symbol -------------------------------------------------------------
function makeCard(info) {
  const node = document.getElementById('symbol-card').content.firstElementChild.cloneNode(true);
  node.dataset.symbol = info.symbol;
  node.id = `card-${pathOf(info.symbol)}`;
  node.querySelector('.sym').textContent = info.symbol;
  document.getElementById('symbols').append(node);
  const card = {
    symbol: info.symbol, path: info.path, node,
    bars: [], signal: null, book: null, monitoring: null, monitorTried: false,
    signalMarks: [], lastAction: null, fills: [], equity: [], priceLines: [],
  };
  if (LC) {
    card.chart = LC.createChart(node.querySelector('.chart'), {
      autoSize: true,
      layout: { background: { color: 'transparent' }, textColor: '#c9d1d9', attributionLogo: false },
      grid: { vertLines: { color: '#222a35' }, horzLines: { color: '#222a35' } },
      timeScale: { timeVisible: true, secondsVisible: false },
      rightPriceScale: { borderColor: '#30363d' },
    });
    card.candles = card.chart.addSeries(LC.CandlestickSeries, {
      upColor: '#2ea043', downColor: '#f85149', wickUpColor: '#2ea043',
      wickDownColor: '#f85149', borderVisible: false,
    });
    card.markers = LC.createSeriesMarkers(card.candles, []);
    // Which labels have room depends on the zoom and the scroll: decide again when they change.
    card.chart.timeScale().subscribeVisibleLogicalRangeChange(() => drawMarkers(card));
    card.equityChart = LC.createChart(node.querySelector('.equity-chart'), {
      autoSize: true,
      layout: { background: { color: 'transparent' }, textColor: '#c9d1d9', attributionLogo: false },
      grid: { vertLines: { visible: false }, horzLines: { color: '#222a35' } },
      timeScale: { timeVisible: true },
    });
    card.equityLine = card.equityChart.addSeries(LC.LineSeries, { color: '#58a6ff', lineWidth: 2 });
  }
  cards.set(info.symbol, card);
  return card;
}

function setBars(card, candles) {
  card.bars = candles.map((c) => ({
    time: secs(c.timestamp), open: c.open, high: c.high, low: c.low, close: c.close,
  }));
  if (card.candles) card.candles.setData(card.bars);
}

function addBar(card, sig) {
  const bar = { time: secs(sig.candle_time), open: sig.open, high: sig.high, low: sig.low, close: sig.close };
  const last = card.bars[card.bars.length - 1];
  if (last && bar.time < last.time) return; // older than the chart: the REST state has it
  if (last && bar.time === last.time) card.bars[card.bars.length - 1] = bar;
  else card.bars.push(bar);
  if (card.bars.length > MAX_BARS) {
    card.bars.splice(0, card.bars.length - MAX_BARS);
    if (card.candles) card.candles.setData(card.bars);
  } else if (card.candles) {
    card.candles.update(bar);
  }
}

function drawMarkers(card) {
  if (!card.markers) return;
  const first = card.bars.length ? card.bars[0].time : 0;
  const marks = [];
  for (const s of card.signalMarks) {
    const buy = s.action === 'BUY';
    marks.push({
      time: secs(s.candle_time), position: buy ? 'belowBar' : 'aboveBar',
      color: buy ? '#2ea043' : '#f85149', shape: buy ? 'arrowUp' : 'arrowDown',
      text: `${t(s.action)} ${Math.round(100 * s.confidence)}%`,
    });
  }
  for (const f of card.fills) {
    let color = '#58a6ff'; let text = `${t('entry_m')} ${price(f.price)}`; let shape = 'circle';
    if (f.reason === 'stop_loss') { color = '#f85149'; text = `${t('sl_m')} ${price(f.price)}`; shape = 'square'; }
    else if (f.reason === 'take_profit') { color = '#2ea043'; text = `${t('tp_m')} ${price(f.price)}`; shape = 'square'; }
    else if (f.side === 'SELL') { color = '#d29922'; text = `${t('SELL')} ${price(f.price)}`; }
    marks.push({ time: secs(f.fill_time), position: f.side === 'BUY' ? 'belowBar' : 'aboveBar', color, shape, text });
  }
  const shown = marks.filter((m) => m.time >= first).sort((a, b) => a.time - b.time);
  const kept = shown.slice(-MAX_MARKERS);
  const scale = card.chart.timeScale();
  let right = null; // left edge (px) of the label kept last, walking from the newest
  for (let i = kept.length - 1; i >= 0; i--) {
    const m = kept[i];
    const x = scale.timeToCoordinate(m.time);
    if (x === null) continue; // off screen: drawn again when the view moves
    const half = (m.text.length * MARKER_CHAR_PX) / 2;
    if (right !== null && x + half + MARKER_GAP_PX > right) m.text = '';
    else right = x - half;
  }
  card.markers.setMarkers(kept);
}

function drawPriceLines(card) {
  if (!card.candles) return;
  for (const line of card.priceLines) card.candles.removePriceLine(line);
  card.priceLines = [];
  const b = card.book;
  if (!b || !(b.qty > 0)) return;
  const lines = [
    [b.entry_price, '#58a6ff', t('entry')], [b.stop_loss, '#f85149', t('stop')],
    [b.take_profit, '#2ea043', t('take_profit')],
  ];
  for (const [value, color, title] of lines) {
    if (value > 0) {
      card.priceLines.push(card.candles.createPriceLine({ price: value, color, title, lineWidth: 1, lineStyle: 2 }));
    }
  }
}

function lastClose(card) {
  const last = card.bars[card.bars.length - 1];
  return last ? last.close : null;
}

function renderBook(card) {
  const dl = card.node.querySelector('.book .kv');
  dl.replaceChildren();
  const b = card.book;
  if (!b) { dl.append(el('dd', { class: 'empty' }, t('no_book'))); return; }
  const close = lastClose(card);
  const unrealized = b.qty > 0 && close ? b.qty * (close - b.entry_price) : 0;
  const rows = [
    ['cash', num(b.cash)], ['position', num(b.qty, 6)],
    ['entry', price(b.entry_price)], ['stop', price(b.stop_loss)],
    ['take_profit', price(b.take_profit)],
    ['unrealized', num(unrealized)], ['realized', num(b.realized_pnl)],
    ['round_trips', `${b.n_round_trips ?? 0} (${b.n_wins ?? 0})`],
  ];
  for (const [key, value] of rows) {
    const dd = el('dd', { 'data-field': key }, value);
    if (key === 'unrealized' || key === 'realized') {
      const v = key === 'unrealized' ? unrealized : b.realized_pnl;
      dd.className = v > 0 ? 'up' : v < 0 ? 'down' : '';
    }
    dl.append(el('dt', {}, t(key)), dd);
  }
}

function renderSignal(card) {
  const s = card.signal;
  const badge = card.node.querySelector('.badge.action');
  const line = card.node.querySelector('.signal-line');
  const body = card.node.querySelector('.votes tbody');
  body.replaceChildren();
  const close = lastClose(card);
  card.node.querySelector('.last-price').textContent = close ? price(close) : '';
  if (!s) {
    badge.textContent = ''; badge.dataset.action = 'NEUTRAL';
    line.textContent = t('no_signal');
    return;
  }
  badge.dataset.action = s.action;
  badge.textContent = `${t(s.action)} ${Math.round(100 * s.confidence)}%`;
  const why = s.reason ? ` · ${t(`reason_${s.reason}`)}` : '';
  line.textContent = `${when(s.candle_time)} · ${t(s.action)} · ${pct(s.confidence)}${why}`;
  for (const v of s.votes || []) {
    body.append(el('tr', {},
      el('td', {}, v.model), el('td', { 'data-action': v.action, class: 'vote' }, t(v.action)),
      el('td', {}, pct(v.confidence)), el('td', { class: 'version' }, v.version)));
  }
}

function renderEquity(card) {
  const empty = card.node.querySelector('.equity-empty');
  empty.hidden = card.equity.length > 0;
  if (!card.equityLine) return;
  const seen = new Map(); // one point per second, the last one wins
  for (const p of card.equity) seen.set(secs(p.time), p.equity);
  const data = [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
  card.equityLine.setData(data);
  if (data.length) card.equityChart.timeScale().fitContent();
}

function monitoringAlerts(body) {
  const list = body && (body.alerts || body.recent_alerts);
  return Array.isArray(list) ? list : [];
}

// The accuracy of one quality summary (whatever its exact shape: a number, or an object
// with accuracy / balanced_accuracy and a count).
function accuracyOf(summary) {
  if (typeof summary === 'number') return { acc: summary, n: null };
  if (!summary || typeof summary !== 'object') return null;
  const acc = summary.accuracy ?? summary.balanced_accuracy;
  if (typeof acc !== 'number') return null;
  return { acc, n: summary.n ?? summary.count ?? summary.outcomes ?? null };
}

function accuracyText(summary) {
  const a = accuracyOf(summary);
  if (!a) return '–';
  return a.n === null ? pct(a.acc) : `${pct(a.acc)} (n=${a.n})`;
}

// "86400s" -> "1 ngày" / "1 d", "3600s" -> "1 h": the monitoring's window names.
function windowLabel(key) {
  const m = /^(\d+)s$/.exec(key);
  if (!m) return key;
  const s = Number(m[1]);
  if (s % 86400 === 0) return `${s / 86400} ${t('days')}`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return key;
}

function renderMonitoring(card) {
  const box = card.node.querySelector('.mon-body');
  box.replaceChildren();
  const m = card.monitoring;
  const mine = alerts.filter((a) => a.symbol === card.symbol);
  if (!m && !mine.length) {
    box.append(el('p', { class: 'empty no-monitoring' }, t('no_monitoring')));
    return;
  }
  if (m) {
    const quality = m.quality && typeof m.quality === 'object' ? m.quality : null;
    if (quality) { // rolling accuracy per window: champion beside challenger
      const body = el('tbody');
      for (const [window_, byModel] of Object.entries(quality)) {
        const row = byModel && typeof byModel === 'object' && !accuracyOf(byModel) ? byModel : { champion: byModel };
        body.append(el('tr', {}, el('td', {}, windowLabel(window_)), el('td', {}, accuracyText(row.champion)),
          el('td', {}, accuracyText(row.challenger))));
      }
      box.append(el('div', { class: 'scroll' }, el('table', { class: 'quality' },
        el('thead', {}, el('tr', {}, el('th', {}, t('window')), el('th', {}, t('champion')),
          el('th', {}, t('challenger')))), body)));
    }
    const dl = el('dl', { class: 'kv' });
    const acc = m.rolling_accuracy ?? m.accuracy;
    if (typeof acc === 'number') dl.append(el('dt', {}, t('accuracy')), el('dd', {}, pct(acc)));
    const wf = accuracyOf(m.walk_forward);
    if (wf) dl.append(el('dt', {}, t('walk_forward')), el('dd', {}, pct(wf.acc)));
    if (typeof m.losing_streak === 'number') {
      dl.append(el('dt', {}, t('losing_streak')), el('dd', {}, String(m.losing_streak)));
    }
    if (m.drift && typeof m.drift === 'object') {
      const flag = m.drift.drift ?? m.drift.detected ?? m.drift.drifted ?? m.drift.active;
      if (typeof flag === 'boolean') dl.append(el('dt', {}, t('drift')), el('dd', {}, t(flag ? 'yes' : 'no')));
    }
    if (dl.childElementCount) box.append(dl);
  }
  const list = el('ul', { class: 'alerts' });
  const active = monitoringAlerts(m).map((a) => normalizeAlert(a, card.symbol));
  const shown = [...mine, ...active.filter((a) => !mine.some((x) => x.id && x.id === a.id))];
  for (const a of shown.slice(0, 10)) list.append(alertItem(a));
  if (shown.length) box.append(list);
}

// --- orders and alerts ------------------------------------------------------------------
function orderRow(o) {
  const reason = o.reason === 'take_profit' ? t('take_profit_r') : t(o.reason);
  const pnl = o.side === 'SELL' ? num(o.pnl) : '';
  return el('tr', { 'data-id': o.id, 'data-side': o.side },
    el('td', {}, when(o.fill_time)), el('td', {}, o.symbol),
    el('td', { class: o.side === 'BUY' ? 'up' : 'down' }, t(o.side)), el('td', {}, reason),
    el('td', {}, price(o.price)), el('td', {}, num(o.amount, 6)),
    el('td', { class: o.pnl > 0 ? 'up' : o.pnl < 0 ? 'down' : '' }, pnl));
}

function renderOrders() {
  const body = document.querySelector('#orders tbody');
  body.replaceChildren(...orders.slice(0, MAX_ORDERS).map(orderRow));
  document.getElementById('orders-empty').hidden = orders.length > 0;
}

function addOrder(o) {
  if (orders.some((x) => x.id === o.id)) return false;
  orders.push(o);
  orders.sort((a, b) => b.fill_time - a.fill_time);
  if (orders.length > MAX_ORDERS * 2) orders.length = MAX_ORDERS * 2;
  return true;
}

// An alert of the monitoring (tinhieu/monitoring/alerts.py: id, symbol, kind, state
// raised/cleared, severity, value, threshold, message, message_en, at_ms, raised_at_ms).
function normalizeAlert(data, symbol = null) {
  const d = data && typeof data === 'object' ? data : { message: String(data) };
  const at = d.at_ms ?? d.at ?? d.time ?? null;
  return {
    id: d.id ?? null,
    symbol: d.symbol || symbol,
    level: d.severity ?? d.level ?? 'warning',
    kind: d.kind ?? d.code ?? 'alert',
    state: d.state ?? 'raised',
    message: d.message ?? d.detail ?? JSON.stringify(d),
    message_en: d.message_en ?? null,
    at: at === null ? Date.now() : (at < 1e12 ? at * 1000 : at),
  };
}

function alertItem(a) {
  const text = currentLang() === 'en' && a.message_en ? a.message_en : a.message;
  const state = a.state === 'cleared' ? ` (${t('cleared')})` : '';
  return el('li', { 'data-level': a.level, 'data-state': a.state },
    el('time', {}, when(a.at)), ' ',
    el('strong', {}, (a.symbol ? `${a.symbol} · ${a.kind}` : a.kind) + state), ' ',
    el('span', {}, text));
}

function renderAlerts() {
  document.getElementById('alerts').replaceChildren(...alerts.slice(0, MAX_ALERTS).map(alertItem));
  document.getElementById('alerts-empty').hidden = alerts.length > 0;
}

// --- initial state (REST) ----------------------------------------------------------------
async function lastPage(kind, path) {
  const head = await getJSON(`${API}/${kind}?symbol=${path}&limit=1`);
  if (!head || !head.total) return [];
  const offset = Math.max(0, head.total - 1000);
  const page = await getJSON(`${API}/${kind}?symbol=${path}&limit=1000&offset=${offset}`);
  return page ? page[kind] : [];
}

async function loadBook(card) {
  card.book = await getJSON(`${API}/positions/${card.path}`);
  renderBook(card);
  drawPriceLines(card);
}

async function loadEquity(card) {
  card.equity = await lastPage('equity', card.path);
  renderEquity(card);
}

async function loadSymbol(card) {
  const [window_, signal, book, trades, equity] = await Promise.all([
    getJSON(`${API}/windows/${card.path}`), getJSON(`${API}/signals/${card.path}`),
    getJSON(`${API}/positions/${card.path}`), lastPage('trades', card.path),
    lastPage('equity', card.path),
  ]);
  if (window_) { // keep the candles the stream brought while the REST answers were on the way
    const newer = card.bars.filter((b) => b.time > secs(window_.last));
    setBars(card, window_.candles);
    for (const bar of newer) card.bars.push(bar);
    if (newer.length && card.candles) card.candles.setData(card.bars);
  }
  if (signal && !(card.signal && card.signal.candle_time > signal.candle_time)) {
    addBar(card, signal);
    card.signal = signal;
    keepSignalMark(card, signal);
  }
  card.book = book;
  card.fills = trades.slice(-MAX_MARKERS);
  for (const o of trades.slice(-MAX_ORDERS)) addOrder(o);
  card.equity = equity;
  renderCard(card);
}

// A marker where the verdict turns to BUY or SELL (a run of equal verdicts is one marker:
// a marker on every candle would hide the chart).
function keepSignalMark(card, s) {
  const previous = card.lastAction;
  card.lastAction = s.action;
  if (s.action === 'NEUTRAL' || s.action === previous) return;
  if (card.signalMarks.some((m) => m.candle_time === s.candle_time)) return;
  card.signalMarks.push(s);
  if (card.signalMarks.length > MAX_MARKERS) card.signalMarks.shift();
}

function renderCard(card) {
  renderSignal(card);
  renderBook(card);
  drawPriceLines(card);
  drawMarkers(card);
  renderEquity(card);
  renderMonitoring(card);
}

async function loadMonitoring(card) {
  let body = null;
  try {
    const resp = await fetch(`${API}/monitoring/${card.path}`, { credentials: 'same-origin' });
    if (resp.ok) body = await resp.json();
    else if (resp.status === 404 && !card.monitorTried) {
      const legacy = await fetch(`/monitoring/${card.path}`, { credentials: 'same-origin' });
      if (legacy.ok && (legacy.headers.get('Content-Type') || '').includes('json')) body = await legacy.json();
    }
  } catch { body = null; }
  card.monitorTried = true;
  card.monitoring = body && typeof body === 'object' ? body : null;
  renderMonitoring(card);
}

async function loadAll() {
  const body = await getJSON(`${API}/symbols`);
  const symbols = body ? body.symbols : [];
  for (const info of symbols) if (!cards.has(info.symbol)) makeCard(info);
  await Promise.all([...cards.values()].map(loadSymbol));
  renderOrders();
  renderAlerts();
}

// --- live messages ---------------------------------------------------------------------
function onMessage(text) {
  let msg;
  try { msg = JSON.parse(text); } catch { return; }
  if (msg.type === 'subscribed') {
    // After a reconnect the stream does not replay what was missed: read the state again.
    if (subscribedBefore && document.body.dataset.ready === '1') loadAll();
    subscribedBefore = true;
    return;
  }
  if (msg.type === 'dropped') { showNotice(t('dropped')); return; }
  pending.push(msg);
  if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
}

function flush() {
  flushTimer = null;
  const batch = pending.splice(0);
  const touched = new Set();
  const books = new Set();
  let newOrders = false; let newAlerts = false;
  for (const msg of batch) {
    const d = msg.data || {};
    const card = cards.get(d.symbol);
    if (msg.type === 'signal' && card) {
      addBar(card, d);
      card.signal = d;
      keepSignalMark(card, d);
      touched.add(card);
    } else if (msg.type === 'order') {
      newOrders = addOrder(d) || newOrders;
      if (card) {
        card.fills.push(d);
        if (card.fills.length > MAX_MARKERS) card.fills.shift();
        touched.add(card); books.add(card);
      }
    } else if (msg.type === 'alert') {
      const a = normalizeAlert(d);
      alerts.unshift(a);
      if (alerts.length > MAX_ALERTS * 2) alerts.length = MAX_ALERTS * 2;
      newAlerts = true;
      const c = cards.get(a.symbol);
      if (c) renderMonitoring(c);
    }
  }
  for (const card of touched) {
    renderSignal(card);
    renderBook(card);
    drawMarkers(card);
  }
  for (const card of books) { loadBook(card); loadEquity(card); }
  if (newOrders) renderOrders();
  if (newAlerts) renderAlerts();
}

function setConn(state) {
  const pill = document.getElementById('conn');
  pill.dataset.state = state;
  pill.dataset.i18n = `conn_${state}`;
  pill.textContent = t(`conn_${state}`);
}

function showNotice(text) {
  const box = document.getElementById('notice');
  box.textContent = text;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 8000);
}

function connect(attempt = 0) {
  if (typeof window.WebSocket !== 'function' || (attempt >= 2 && streamKind === null)) {
    connectSSE();
    return;
  }
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}${API}/ws`;
  const ws = new WebSocket(url);
  let opened = false;
  ws.onopen = () => { opened = true; streamKind = 'ws'; setConn('ws'); };
  ws.onmessage = (event) => onMessage(event.data);
  ws.onclose = (event) => {
    setConn('lost');
    if (event.code === 1008) showNotice(t('dropped'));
    const next = opened ? 0 : attempt + 1;
    setTimeout(() => connect(next), Math.min(10000, 1000 * 2 ** Math.min(next, 4)));
  };
}

function connectSSE() {
  const source = new EventSource(`${API}/stream`);
  source.onopen = () => { streamKind = 'sse'; setConn('sse'); };
  source.onmessage = (event) => onMessage(event.data);
  source.onerror = () => setConn('lost'); // EventSource reconnects by itself
}

// --- language ----------------------------------------------------------------------------
function applyLang(next) {
  setLang(next);
  translate();
  for (const button of document.querySelectorAll('.lang button')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === currentLang()));
  }
  for (const card of cards.values()) renderCard(card);
  renderOrders();
  renderAlerts();
}

async function main() {
  const started = performance.now();
  applyLang(currentLang());
  for (const button of document.querySelectorAll('.lang button')) {
    button.addEventListener('click', () => applyLang(button.dataset.lang));
  }
  document.getElementById('logout').hidden = document.body.dataset.auth !== 'on';
  if (!LC) showNotice(t('install'));
  connect();
  await loadAll();
  document.body.dataset.ready = '1';
  window.tinhieuReadyMs = performance.now(); // measured by the browser test
  window.tinhieuLoadMs = performance.now() - started;
  for (const card of cards.values()) loadMonitoring(card);
  monitorTimer = setInterval(() => { for (const card of cards.values()) loadMonitoring(card); }, MONITOR_MS);
}

// The live-message entry point, for the browser test (it injects an alert message).
window.tinhieuDashboard = { onMessage };

main().catch((err) => {
  if (String(err && err.message) !== 'unauthorized') console.error('dashboard failed to start', err);
});
window.addEventListener('beforeunload', () => clearInterval(monitorTimer));
