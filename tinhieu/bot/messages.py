"""What Discord users read: Vietnamese texts and embeds, built from the service's dataclasses.

Numbers follow Vietnamese usage: ``.`` groups thousands, ``,`` marks decimals
(``67.234,50 USDT``, ``1.748.097.000 ₫``, ``+2,35%``). Times are shown in UTC+7 (giờ Việt Nam).
Emojis are welcome here; log messages (``tinhieu.i18n``) stay ASCII.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import discord

from models.records import Alert, Order
from tinhieu.bot.service import (
    BUSY,
    EXCHANGE,
    NO_DATA,
    NO_NEWS,
    WORKER,
    ModelsView,
    Mover,
    Movers,
    NewsHeadline,
    PriceQuote,
    Quality,
    SentimentView,
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
MODEL_VI = {"rf": "Random Forest", "svm": "SVM", "lr": "Hồi quy logistic", "lstm": "LSTM"}
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
    ("tintuc", "<mã>", "Tin mới nhất nhắc tới mã, kèm điểm tâm lý của từng tin và của mã"),
    ("news", "<mã>", "Như `tintuc`"),
    ("mohinh", "<mã>", "Mô hình champion/challenger, phiên bản, walk-forward và chất lượng "
     "thực tế 1 ngày / 7 ngày"),
    ("models", "<mã>", "Như `mohinh`"),
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


def fmt_ms_utc(ms: int) -> str:
    """Epoch ms -> ``07:05 21/03/2025 UTC``."""
    return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%H:%M %d/%m/%Y UTC")


def fmt_score(value: float) -> str:
    """A sentiment score with its sign: ``+0,62``, ``-1,05``, ``0,00``."""
    if abs(value) < 0.005:
        return fmt_number(0.0, 2)  # never "-0,00"
    return ("+" if value > 0 else "") + fmt_number(value, 2)


def score_icon(value: float) -> str:
    """🟢 positive, 🔴 negative, ⚪ neutral (VADER's usual ±0.05 cut)."""
    return "🟢" if value >= 0.05 else "🔴" if value <= -0.05 else "⚪"


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


def signal_embed(
    signal: SignalView, news: SentimentView | None = None, news_missing: str | None = None
) -> discord.Embed:
    """``!dudoan``: the ensemble verdict, then each model's vote, confidence and version,
    and the symbol's news sentiment (``news``; ``news_missing`` says why there is none)."""
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
    if news is not None or news_missing is not None:
        embed.add_field(name="📰 Tin tức", value=_news_brief(news, news_missing), inline=False)
    embed.set_footer(
        text=f"Phiên bản mô hình: {signal.model_version or '?'} · "
        "Đây là tín hiệu tham khảo, không phải lời khuyên đầu tư."
    )
    return embed


def _news_brief(news: SentimentView | None, missing: str | None) -> str:
    if news is None:
        if missing in (WORKER, BUSY):
            return "⚠️ Chưa hỏi được worker về tin tức."
        return "chưa có tin"
    return (
        f"Điểm tâm lý {score_icon(news.score)} **{fmt_score(news.score)}** · "
        f"{news.count_24h} tin trong 24 giờ qua"
    )


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


# --- !tintuc ------------------------------------------------------------------------------

EMBED_BUDGET = 5800  # Discord refuses an embed over 6000 characters


def news_embed(view: SentimentView) -> discord.Embed:
    """``!tintuc`` / ``!news``: the symbol's decayed sentiment and counts, then its newest
    headlines (title linked, source, time in Vietnam and UTC, score with an icon)."""
    half_life = (
        f" (giảm một nửa sau {fmt_number(view.half_life_s / 3600.0, 0)} giờ)"
        if view.half_life_s else ""
    )
    mean = f" · trung bình mỗi tin {fmt_score(view.mean)}" if view.mean is not None else ""
    embed = discord.Embed(
        title=f"📰 Tin tức {view.symbol}",
        description=(
            f"Điểm tâm lý tích lũy{half_life}: {score_icon(view.score)} "
            f"**{fmt_score(view.score)}**{mean}\n"
            f"Số tin: **{view.count_1h}** trong 1 giờ qua · **{view.count_24h}** trong 24 giờ "
            f"qua · {view.total} tổng cộng"
        ),
        colour=discord.Colour.green() if view.score >= 0.05
        else discord.Colour.red() if view.score <= -0.05
        else discord.Colour.light_grey(),
    )
    for headline in view.headlines:
        name, value = _headline_field(headline)
        embed.add_field(name=name, value=value, inline=False)
        if len(embed) > EMBED_BUDGET:  # very long titles or links: keep the newest that fit
            embed.remove_field(-1)
            break
    embed.set_footer(
        text="Điểm VADER của tiêu đề, từ -1 (tiêu cực) đến +1 (tích cực). "
        "Tin tham khảo, không phải lời khuyên đầu tư."
    )
    return embed


def _headline_field(headline: NewsHeadline) -> tuple[str, str]:
    score = headline.sentiment
    name = f"{score_icon(score)} {fmt_score(score)} · {_source_name(headline.source)}"
    title = _short(headline.title, 200)
    url = headline.url.strip()
    if url.startswith(("http://", "https://")) and len(url) <= 400:
        safe_url = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        link_text = title.replace("[", "(").replace("]", ")")
        shown = f"[{discord.utils.escape_markdown(link_text)}]({safe_url})"
    else:
        shown = f"**{discord.utils.escape_markdown(title)}**"
    when = f"🕒 {fmt_ms_time(headline.published_ms)} · {fmt_ms_utc(headline.published_ms)}"
    return name[:256], f"{shown}\n{when}"


def _source_name(source: str) -> str:
    """``https://www.coindesk.com/arc/outboundfeeds/rss/`` -> ``coindesk.com``."""
    if source.startswith("file:"):
        return source
    host = urlsplit(source).hostname or source or "?"
    return host.removeprefix("www.")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- !mohinh ------------------------------------------------------------------------------


def models_embed(view: ModelsView) -> discord.Embed:
    """``!mohinh`` / ``!models``: champion and challenger, the members of the latest signal,
    walk-forward figures and the rolling live quality (champion vs challenger when the
    challenger has outcomes)."""
    embed = discord.Embed(title=f"🧠 Mô hình {view.symbol}", colour=discord.Colour.blurple())
    embed.description = _model_versions(view)
    embed.add_field(name="🧩 Các mô hình thành viên (tín hiệu mới nhất)",
                    value=_members(view), inline=False)
    wf = view.walk_forward
    embed.add_field(name="🧪 Walk-forward (lúc huấn luyện)", value=_walk_forward(view),
                    inline=False)
    if view.monitoring_missing is not None:
        embed.add_field(name="📈 Chất lượng thực tế", value=_missing_text(
            view.monitoring_missing, "⏳ Chưa có dữ liệu giám sát (chưa có tín hiệu nào)."),
            inline=False)
    elif not view.quality or all(champion.n == 0 for _, champion, _c in view.quality):
        embed.add_field(
            name="📈 Chất lượng thực tế",
            value="⏳ Chưa có kết quả thực tế nào: mỗi dự đoán chỉ được chấm khi nhãn của nó "
            "đã khép lại (sau vài nến).",
            inline=False,
        )
    else:
        for window_s, champion, challenger in view.quality:
            embed.add_field(
                name=f"📈 Thực tế {_window_vi(window_s)} (champion)",
                value=_live_quality(champion, wf),
                inline=False,
            )
            if challenger is not None:
                embed.add_field(
                    name=f"⚖️ Champion vs challenger · {_window_vi(window_s)}",
                    value=_versus(champion, challenger, view),
                    inline=False,
                )
    embed.set_footer(text="Độ chính xác và các mốc đo trên cùng các kết quả đã khép lại. "
                     "Không phải lời khuyên đầu tư.")
    return embed


def _missing_text(what: str | None, no_data: str) -> str:
    if what in (WORKER, BUSY):
        return "⚠️ Chưa hỏi được worker."
    return no_data


def _model_versions(view: ModelsView) -> str:
    lines: list[str] = []
    if view.health_missing is not None:
        lines.append(_missing_text(view.health_missing,
                                   "⚠️ Worker không báo thông tin mô hình (/health)."))
    champion = view.champion or view.loaded
    if champion:
        lines.append(f"🏆 Champion: **{champion}**")
    elif view.health_missing is None:
        lines.append("🏆 Champion: chưa có mô hình nào được dùng để giao dịch mã này.")
    if view.loaded and view.champion and view.loaded != view.champion:
        lines.append(f"Đang chạy trên worker: `{view.loaded}`")
    if view.challenger:
        shadow = " (đang chạy thử song song, không giao dịch)" if view.shadow else ""
        lines.append(f"🥊 Challenger: **{view.challenger}**{shadow}")
    elif view.health_missing is None:
        lines.append("🥊 Challenger: không có")
    if view.why_no_model and not view.loaded:
        lines.append(f"Lý do (từ worker): {_short(view.why_no_model, 400)}")
    return "\n".join(lines)


def _members(view: ModelsView) -> str:
    signal = view.signal
    if signal is None:
        return _missing_text(view.signal_missing, "⏳ Chưa có tín hiệu nào cho mã này.")
    if not signal.votes:
        if signal.reason:
            return NO_VERDICT_VI.get(signal.reason, signal.reason)
        return "(worker không gửi kèm phiếu của các mô hình)"
    lines = [
        f"{MODEL_VI.get(v.model, v.model)} ({v.model}) · `{v.version or '?'}` · "
        f"trọng số {fmt_number(v.weight, 2)}"
        for v in signal.votes
    ]
    lines.append(
        f"Nến {fmt_ms_time(signal.candle_time)} · phiên bản `{signal.model_version or '?'}`"
    )
    return "\n".join(lines)


def _walk_forward(view: ModelsView) -> str:
    wf = view.walk_forward
    if wf is None:
        if view.monitoring_missing is not None:
            return _missing_text(view.monitoring_missing, "⏳ Chưa có (chưa có tín hiệu nào).")
        return "Mô hình không kèm số liệu walk-forward."
    parts = [f"Độ chính xác **{_pct(wf.get('accuracy'))}**",
             f"cân bằng {_pct(wf.get('balanced_accuracy'))}"]
    if isinstance(wf.get("n"), int | float):
        parts.append(f"n = {fmt_number(float(wf['n']), 0)}")
    text = " · ".join(parts)
    baselines = wf.get("baselines")
    if isinstance(baselines, Mapping) and baselines:
        names = {"majority": "luôn lớp nhiều nhất", "persistence": "lặp lại nhãn trước"}
        text += "\nMốc so sánh: " + " · ".join(
            f"{names.get(k, k)} {_pct(v)}" for k, v in baselines.items()
        )
    return text


def _live_quality(q: Quality, wf: Mapping[str, Any] | None) -> str:
    if q.n == 0:
        return "⏳ Chưa có kết quả nào trong khoảng này."
    wf_acc = f"walk-forward {_pct(wf.get('accuracy'))} · " if wf else ""
    wf_bal = f"walk-forward {_pct(wf.get('balanced_accuracy'))} · " if wf else ""
    return "\n".join([
        f"n = {q.n} kết quả",
        f"Độ chính xác **{_pct(q.accuracy)}** ({wf_acc}luôn ĐỨNG NGOÀI "
        f"{_pct(q.neutral_accuracy)})",
        f"Độ chính xác cân bằng {_pct(q.balanced_accuracy)} ({wf_bal}luôn ĐỨNG NGOÀI "
        f"{_pct(q.neutral_balanced_accuracy)})",
        f"Lệnh MUA có lãi {_pct(q.buy_hit_rate)} ({q.buy_trades} lệnh)",
        f"Sai số hiệu chuẩn {_num(q.calibration_error, 3)}",
        f"Lợi nhuận giấy {_signed_pct(q.paper_return_pct)}",
    ])


def _versus(champion: Quality, challenger: Quality, view: ModelsView) -> str:
    rows = [
        ("", f"champion {view.champion or ''}".strip(),
         f"challenger {view.challenger or ''}".strip()),
        ("n", str(champion.n), str(challenger.n)),
        ("độ chính xác", _pct(champion.accuracy), _pct(challenger.accuracy)),
        ("cân bằng", _pct(champion.balanced_accuracy), _pct(challenger.balanced_accuracy)),
        ("MUA có lãi", _pct(champion.buy_hit_rate), _pct(challenger.buy_hit_rate)),
        ("sai số hiệu chuẩn", _num(champion.calibration_error, 3),
         _num(challenger.calibration_error, 3)),
        ("lợi nhuận giấy", _signed_pct(champion.paper_return_pct),
         _signed_pct(challenger.paper_return_pct)),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"{a.ljust(w0)}  {b.rjust(w1)}  {c.rjust(w2)}" for a, b, c in rows]
    return "```\n" + "\n".join(lines) + "\n```"


def _pct(value: object) -> str:
    return fmt_conf(float(value)) if isinstance(value, int | float) else "–"


def _num(value: float | None, decimals: int) -> str:
    return fmt_number(value, decimals) if value is not None else "–"


def _signed_pct(value: float | None) -> str:
    return fmt_pct(value) if value is not None else "–"


def _window_vi(window_s: int) -> str:
    if window_s % 86_400 == 0:
        return f"{window_s // 86_400} ngày"
    if window_s % 3600 == 0:
        return f"{window_s // 3600} giờ"
    return f"{window_s} giây"


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
    if error.what == NO_NEWS:
        about = f" nhắc tới {error.symbol}" if error.symbol else ""
        return (
            f"📭 Chưa có tin tức nào{about}. Worker đọc tin từ các nguồn RSS trong "
            "TINHIEU_NEWS_FEEDS (để trống là tắt); thử lại khi có tin mới nhé."
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
