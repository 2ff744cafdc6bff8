// Texts of the dashboard: Vietnamese (default) and English. The choice is remembered in
// localStorage ("tinhieu.lang").
export const STRINGS = {
  vi: {
    title: 'Bảng điều khiển',
    conn_connecting: 'đang kết nối',
    conn_ws: 'trực tiếp (WebSocket)',
    conn_sse: 'trực tiếp (SSE)',
    conn_lost: 'mất kết nối, đang thử lại',
    logout: 'Đăng xuất',
    recent_orders: 'Lệnh gần đây',
    alerts: 'Cảnh báo',
    no_orders: 'Chưa có lệnh nào.',
    no_alerts: 'Chưa có cảnh báo.',
    col_time: 'Thời gian', col_symbol: 'Mã', col_side: 'Chiều', col_reason: 'Lý do',
    col_price: 'Giá', col_amount: 'Khối lượng', col_pnl: 'Lãi/lỗ',
    col_model: 'Mô hình', col_vote: 'Phiếu', col_confidence: 'Độ tin cậy',
    col_version: 'Phiên bản',
    book: 'Sổ lệnh',
    latest_signal: 'Tín hiệu mới nhất',
    equity: 'Đường vốn',
    no_equity: 'Chưa có điểm vốn nào.',
    monitoring: 'Độ chính xác & cảnh báo',
    no_monitoring: 'chưa có dữ liệu giám sát',
    accuracy: 'Độ chính xác',
    window: 'Cửa sổ', champion: 'Mô hình chính', challenger: 'Mô hình thử',
    walk_forward: 'Độ chính xác khi huấn luyện (walk-forward)', losing_streak: 'Chuỗi thua',
    drift: 'Trôi dữ liệu', yes: 'có', no: 'không', cleared: 'đã hết', days: 'ngày',
    cash: 'Tiền mặt', position: 'Vị thế', entry: 'Giá vào', stop: 'Cắt lỗ',
    take_profit: 'Chốt lời', unrealized: 'Lãi/lỗ chưa chốt', realized: 'Lãi/lỗ đã chốt',
    round_trips: 'Giao dịch (thắng)',
    no_book: 'Chưa có sổ lệnh.',
    no_signal: 'Chưa có tín hiệu.',
    no_candles: 'Chưa có nến.',
    BUY: 'MUA', SELL: 'BÁN', NEUTRAL: 'ĐỨNG NGOÀI',
    signal: 'tín hiệu', stop_loss: 'cắt lỗ', take_profit_r: 'chốt lời',
    entry_m: 'vào', sl_m: 'CL', tp_m: 'CL+',
    reason_no_model: 'chưa có mô hình', reason_warming_up: 'đang khởi động chỉ báo',
    reason_features_not_finite: 'đặc trưng không hợp lệ', reason_model_error: 'lỗi mô hình',
    model_version: 'mô hình',
    install: 'Thư viện biểu đồ chưa tải được: chạy `npm ci --prefix web` rồi tải lại trang.',
    dropped: 'Luồng bị ngắt (chậm); đang tải lại trạng thái.',
  },
  en: {
    title: 'Dashboard',
    conn_connecting: 'connecting',
    conn_ws: 'live (WebSocket)',
    conn_sse: 'live (SSE)',
    conn_lost: 'disconnected, retrying',
    logout: 'Sign out',
    recent_orders: 'Recent orders',
    alerts: 'Alerts',
    no_orders: 'No orders yet.',
    no_alerts: 'No alerts yet.',
    col_time: 'Time', col_symbol: 'Symbol', col_side: 'Side', col_reason: 'Reason',
    col_price: 'Price', col_amount: 'Amount', col_pnl: 'P&L',
    col_model: 'Model', col_vote: 'Vote', col_confidence: 'Confidence',
    col_version: 'Version',
    book: 'Book',
    latest_signal: 'Latest signal',
    equity: 'Equity curve',
    no_equity: 'No equity points yet.',
    monitoring: 'Accuracy & alerts',
    no_monitoring: 'no monitoring data yet',
    accuracy: 'Accuracy',
    window: 'Window', champion: 'Champion', challenger: 'Challenger',
    walk_forward: 'Walk-forward accuracy (training)', losing_streak: 'Losing streak',
    drift: 'Drift', yes: 'yes', no: 'no', cleared: 'cleared', days: 'd',
    cash: 'Cash', position: 'Position', entry: 'Entry', stop: 'Stop loss',
    take_profit: 'Take profit', unrealized: 'Unrealized P&L', realized: 'Realized P&L',
    round_trips: 'Round trips (wins)',
    no_book: 'No book yet.',
    no_signal: 'No signal yet.',
    no_candles: 'No candles yet.',
    BUY: 'BUY', SELL: 'SELL', NEUTRAL: 'NEUTRAL',
    signal: 'signal', stop_loss: 'stop loss', take_profit_r: 'take profit',
    entry_m: 'in', sl_m: 'SL', tp_m: 'TP',
    reason_no_model: 'no model', reason_warming_up: 'warming up',
    reason_features_not_finite: 'features not finite', reason_model_error: 'model error',
    model_version: 'model',
    install: 'The chart library did not load: run `npm ci --prefix web`, then reload.',
    dropped: 'The stream was dropped (too slow); reloading the state.',
  },
};

const KEY = 'tinhieu.lang';
let lang = 'vi';
try {
  const saved = localStorage.getItem(KEY);
  if (saved in STRINGS) lang = saved;
} catch { /* storage disabled: Vietnamese */ }

export function currentLang() { return lang; }

export function t(key) {
  return STRINGS[lang][key] ?? STRINGS.vi[key] ?? key;
}

export function setLang(next) {
  if (!(next in STRINGS)) return;
  lang = next;
  try { localStorage.setItem(KEY, next); } catch { /* not remembered */ }
}

/** Fill every element with a data-i18n attribute under root. */
export function translate(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
}
