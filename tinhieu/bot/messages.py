"""What Discord users read: Vietnamese texts and embeds, built from the service's dataclasses.

Numbers follow Vietnamese usage: ``.`` groups thousands, ``,`` marks decimals
(``67.234,50 USDT``, ``1.748.097.000 ₫``, ``+2,35%``). Times are shown in UTC+7 (giờ Việt Nam).
Emojis are welcome here; log messages (``tinhieu.i18n``) stay ASCII.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import discord

from models.records import Alert, Order
from tinhieu.bot.service import (
    BUSY,
    EXCHANGE,
    NO_DATA,
    WORKER,
    Mover,
    Movers,
    PriceQuote,
    ServiceUnavailable,
    SignalView,
    WorkerHealth,
)

VN_TZ = timezone(timedelta(hours=7), "ICT")

# Keyed by tinhieu.core_types ACTIONS, REASONS and STATUSES (tests/unit/test_core_types.py).
ACTION_VI = {"BUY": "MUA", "SELL": "BÁN", "NEUTRAL": "ĐỨNG NGOÀI"}
# Why a candle has no model verdict (Signal.reason), said plainly to traders.
NO_VERDICT_VI = {
    "no_model": (
        "Chưa có mô hình nào được dùng để giao dịch mã này: mô hình mới chỉ được đưa vào "
        "khi kết quả walk-forward sau phí thắng các mốc so sánh. Hệ thống đứng ngoài, "
        "nhưng vẫn kiểm tra cắt lỗ / chốt lời của vị thế đang mở."
    ),
    "warming_up": "Các chỉ báo đang khởi động (cần 300 nến liên tục trước tín hiệu đầu tiên).",
    "features_not_finite": "Chỉ báo của nến này không hợp lệ (có thể do khoảng trống dữ liệu).",
    "model_error": "Mô hình gặp lỗi khi dự đoán; xem log của worker.",
}
ACTION_ICON = {"BUY": "🟢", "SELL": "🔴", "NEUTRAL": "⚪"}
ACTION_COLOR = {
    "BUY": discord.Colour.green(),
    "SELL": discord.Colour.red(),
    "NEUTRAL": discord.Colour.light_grey(),
}
MODEL_VI = {"rf": "Random Forest", "svm": "SVM", "lr": "Hồi quy logistic"}
REASON_VI = {
    "signal": "theo tín hiệu mô hình",
    "stop_loss": "chạm cắt lỗ 🛑",
    "take_profit": "chạm chốt lời 🎯",
}
STATUS_VI = {"FILLED": "đã khớp", "REJECTED": "bị từ chối"}

#: (command, arguments, what it does) in the order ``!help`` lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("dudoan", "<mã>", "Tín hiệu mới nhất của mô hình tổng hợp, kèm phiếu của từng mô hình"),
    ("price", "<mã>", "Giá hiện tại (USDT và VND) và dự đoán nhanh mới nhất"),
    ("gia", "<mã>", "Như `price`"),
    ("movers", "", "Các mã tăng/giảm mạnh nhất trong 24 giờ"),
    ("ping", "", "Kiểm tra bot và các worker còn sống, kèm độ trễ"),
    ("help", "", "Danh sách lệnh này"),
)


# --- number and time formats ---------------------------------------------------------


def fmt_number(value: float, decimals: int) -> str:
    """``1234567.891, 2`` -> ``1.234.567,89`` (Vietnamese grouping)."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def fmt_usdt(value: float) -> str:
    """A price in USDT with as many decimals as its size needs."""
    size = abs(value)
    decimals = 2 if size >= 100 else 4 if size >= 1 else 6
    return f"{fmt_number(value, decimals)} USDT"


def fmt_vnd(value: float) -> str:
    return f"{fmt_number(value, 0)} ₫"


def fmt_pct(value: float, decimals: int = 2) -> str:
    """A signed percentage: ``+2,35%``."""
    sign = "+" if value > 0 else ""
    return f"{sign}{fmt_number(value, decimals)}%"


def fmt_conf(confidence: float) -> str:
    """``0.723`` -> ``72,3%``."""
    return f"{fmt_number(confidence * 100.0, 1)}%"


def fmt_ms_time(ms: int) -> str:
    """Epoch ms -> ``14:05 21/03/2025 (giờ VN)``."""
    return datetime.fromtimestamp(ms / 1000.0, UTC).astimezone(VN_TZ).strftime(
        "%H:%M %d/%m/%Y (giờ VN)"
    )


def action_text(action: str) -> str:
    """``BUY`` -> ``🟢 MUA``."""
    return f"{ACTION_ICON.get(action, '❔')} {ACTION_VI.get(action, action)}"


# --- replies ----------------------------------------------------------------------------


def pong(latency_s: float, workers: Sequence[WorkerHealth]) -> str:
    """``!ping``: the gateway latency in ms, then one line per worker."""
    if math.isfinite(latency_s) and latency_s >= 0:
        head = f"🏓 Pong! Độ trễ tới Discord: {round(latency_s * 1000)} ms"
    else:
        head = "🏓 Pong! (chưa đo được độ trễ tới Discord)"
    lines = [head]
    for health in workers:
        if health.ok:
            ms = f"{round(health.latency_ms)} ms" if health.latency_ms is not None else "?"
            lines.append(f"✅ Worker {health.url}: hoạt động ({ms})")
        else:
            lines.append(f"❌ Worker {health.url}: không trả lời ({health.detail})")
    return "\n".join(lines)


def signal_embed(signal: SignalView) -> discord.Embed:
    """``!dudoan``: the ensemble verdict, then each model's vote, confidence and version."""
    embed = discord.Embed(
        title=f"🔮 Dự đoán {signal.symbol}: {action_text(signal.action)}",
        description=(
            f"Độ tin cậy tổng hợp: **{fmt_conf(signal.confidence)}**\n"
            f"Nến lúc {fmt_ms_time(signal.candle_time)}, giá đóng cửa {fmt_usdt(signal.close)}"
        ),
        colour=ACTION_COLOR.get(signal.action, discord.Colour.light_grey()),
    )
    for vote in signal.votes:
        embed.add_field(
            name=f"{MODEL_VI.get(vote.model, vote.model)} ({vote.model})",
            value=(
                f"{action_text(vote.action)} · {fmt_conf(vote.confidence)}\n"
                f"trọng số {fmt_number(vote.weight, 2)} · phiên bản `{vote.version or '?'}`"
            ),
            inline=True,
        )
    if signal.reason:
        embed.add_field(
            name="Không có dự đoán của mô hình",
            value=NO_VERDICT_VI.get(signal.reason, signal.reason),
            inline=False,
        )
    elif not signal.votes:
        embed.add_field(name="Phiếu của các mô hình", value="(worker không gửi kèm)", inline=False)
    embed.set_footer(
        text=f"Phiên bản mô hình: {signal.model_version or '?'} · "
        "Đây là tín hiệu tham khảo, không phải lời khuyên đầu tư."
    )
    return embed


def price_embed(quote: PriceQuote) -> discord.Embed:
    """``!price`` / ``!gia``: USDT, VND, 24 h change and the quick prediction."""
    change = quote.change_24h_pct
    colour = (
        discord.Colour.green() if change and change > 0
        else discord.Colour.red() if change and change < 0
        else discord.Colour.blurple()
    )
    embed = discord.Embed(title=f"💰 Giá {quote.symbol}", colour=colour)
    embed.add_field(name="USDT", value=f"**{fmt_usdt(quote.last_usdt)}**", inline=True)
    embed.add_field(name="VND", value=f"**{fmt_vnd(quote.last_vnd)}**", inline=True)
    if change is not None:
        icon = "📈" if change > 0 else "📉" if change < 0 else "➖"
        embed.add_field(name="24 giờ", value=f"{icon} {fmt_pct(change)}", inline=True)
    embed.add_field(name="Dự đoán nhanh", value=_quick_prediction(quote), inline=False)
    embed.set_footer(
        text=f"Tỷ giá quy đổi: 1 USDT = {fmt_vnd(quote.vnd_per_usdt)} "
        "(cài đặt TINHIEU_VND_PER_USDT)"
    )
    return embed


def _quick_prediction(quote: PriceQuote) -> str:
    signal = quote.prediction
    if signal is not None:
        return (
            f"{action_text(signal.action)} · độ tin cậy {fmt_conf(signal.confidence)} "
            f"(nến {fmt_ms_time(signal.candle_time)})"
        )
    if quote.prediction_missing in (WORKER, BUSY):
        return "⚠️ Chưa hỏi được worker, tạm thời không có dự đoán."
    return "⏳ Chưa có tín hiệu cho mã này (worker đang gom đủ nến)."


def movers_embed(movers: Movers) -> discord.Embed:
    """``!movers``: top gainers and losers over 24 h."""
    embed = discord.Embed(title="📊 Biến động 24 giờ", colour=discord.Colour.gold())
    embed.add_field(
        name="🚀 Tăng mạnh nhất",
        value=_mover_lines(movers.gainers) or "Không có mã nào tăng.",
        inline=False,
    )
    embed.add_field(
        name="🔻 Giảm mạnh nhất",
        value=_mover_lines(movers.losers) or "Không có mã nào giảm.",
        inline=False,
    )
    if movers.missing:
        embed.set_footer(text="Sàn không trả dữ liệu 24h cho: " + ", ".join(movers.missing))
    return embed


def _mover_lines(items: Sequence[Mover]) -> str:
    return "\n".join(
        f"{i}. **{m.symbol}** {fmt_pct(m.change_24h_pct)} ({fmt_usdt(m.last_usdt)})"
        for i, m in enumerate(items, 1)
    )


def help_embed(prefix: str, symbols: Sequence[str]) -> discord.Embed:
    """``!help``: every command with its arguments."""
    embed = discord.Embed(
        title="📖 Các lệnh của tinhieu",
        description=(
            "Bot tín hiệu giao dịch crypto bằng học máy. Mã coin viết kiểu nào cũng được: "
            "`btc`, `BTCUSDT`, `btc/usdt`."
        ),
        colour=discord.Colour.blurple(),
    )
    for name, args, what in COMMANDS:
        usage = f"{prefix}{name} {args}".strip()
        embed.add_field(name=f"`{usage}`", value=what, inline=False)
    embed.set_footer(text="Mã được hỗ trợ: " + ", ".join(symbols))
    return embed


def usage(prefix: str, command: str) -> str:
    """Reply to a command called without its argument."""
    args = next((a for n, a, _ in COMMANDS if n == command), "")
    return (
        f"ℹ️ Thiếu mã coin. Cách dùng: `{prefix}{command} {args}`".rstrip()
        + f", ví dụ `{prefix}{command} btc`."
    )


def unknown_symbol(raw: str, supported: Sequence[str]) -> str:
    shown = raw.replace("`", "'")
    shown = shown if len(shown) <= 30 else shown[:30] + "…"
    return (
        f"❓ Không nhận ra mã `{discord.utils.escape_markdown(shown)}`. "
        f"Các mã được hỗ trợ: {', '.join(supported)}."
    )


def unknown_command(prefix: str, name: str) -> str:
    return f"❓ Không có lệnh `{prefix}{name}`. Gõ `{prefix}help` để xem các lệnh."


def unavailable(error: ServiceUnavailable) -> str:
    """Reply when a source is down or has no data yet; says what to do."""
    if error.what == NO_DATA:
        about = f" cho {error.symbol}" if error.symbol else ""
        return (
            f"⏳ Chưa có tín hiệu{about}: worker vừa khởi động hoặc đang gom đủ nến. "
            "Thử lại sau ít phút nhé."
        )
    if error.what == BUSY:
        return "⏳ Các worker đang chia lại dữ liệu (rebalance). Thử lại sau vài giây nhé."
    if error.what == EXCHANGE:
        return "⚠️ Sàn giao dịch không phản hồi nên chưa lấy được giá. Thử lại sau ít phút nhé."
    if error.what == WORKER:
        return (
            "⚠️ Không kết nối được tới worker tinhieu nào. Kiểm tra "
            "`faust -A streams.app worker` đang chạy và TINHIEU_WEB_URLS đúng, rồi thử lại."
        )
    return "⚠️ Tạm thời không lấy được dữ liệu. Thử lại sau ít phút nhé."


def internal_error() -> str:
    return "❌ Có lỗi khi xử lý lệnh; lỗi đã được ghi vào log của bot."


def order_embed(order: Order) -> discord.Embed:
    """One order from the ``orders`` topic, as posted to the channel."""
    side = order.side.upper()
    rejected = order.status.upper() == "REJECTED"
    status = STATUS_VI.get(order.status.upper(), order.status)
    embed = discord.Embed(
        title=f"{action_text(side)} {order.symbol} · {status}",
        description=f"Lý do: {REASON_VI.get(order.reason, order.reason)}",
        colour=discord.Colour.dark_grey() if rejected
        else ACTION_COLOR.get(side, discord.Colour.blurple()),
    )
    embed.add_field(name="Giá", value=fmt_usdt(order.price), inline=True)
    embed.add_field(name="Khối lượng", value=fmt_number(order.amount, 6), inline=True)
    embed.add_field(name="Phí", value=fmt_usdt(order.fee), inline=True)
    if side == "BUY":
        embed.add_field(name="Cắt lỗ 🛑", value=fmt_usdt(order.stop_loss), inline=True)
        embed.add_field(name="Chốt lời 🎯", value=fmt_usdt(order.take_profit), inline=True)
    else:
        embed.add_field(name="Giá vào lệnh", value=fmt_usdt(order.entry_price), inline=True)
        icon = "💚" if order.pnl > 0 else "💔" if order.pnl < 0 else "➖"
        embed.add_field(name="Lãi/lỗ", value=f"{icon} {_signed_usdt(order.pnl)}", inline=True)
    embed.add_field(name="Độ tin cậy", value=fmt_conf(order.confidence), inline=True)
    embed.add_field(name="Tiền mặt sau lệnh", value=fmt_usdt(order.cash_after), inline=True)
    embed.add_field(name="Khớp lúc", value=fmt_ms_time(order.fill_time), inline=True)
    embed.set_footer(text=f"Mã lệnh {order.id} · mô hình {order.model_version}")
    return embed


def _signed_usdt(value: float) -> str:
    return ("+" if value > 0 else "") + fmt_usdt(value)


def alert_embed(alert: Alert) -> discord.Embed:
    """An alert raised (red) or cleared (green), in Vietnamese, tagged ``[CANH BAO]``."""
    raised = alert.state == "raised"
    title = ("[CANH BAO] " if raised else "[DA HET] ") + (alert.symbol or "toàn cụm")
    embed = discord.Embed(
        title=title,
        description=alert.message,
        colour=discord.Colour.red() if raised else discord.Colour.green(),
    )
    embed.add_field(name="Loại", value=alert.kind, inline=True)
    embed.add_field(name="Mức", value=alert.severity, inline=True)
    embed.add_field(name="Giá trị / ngưỡng",
                    value=f"{alert.value:.4g} / {alert.threshold:.4g}", inline=True)
    embed.set_footer(text=f"{fmt_ms_time(alert.at_ms)} · id {alert.id}")
    return embed
