//! The context gauge by the composer: the tokens the branch shown used at its last answer (prompt and answer, as the
//! model reported them) against the window of the model picked, e.g. "3.2k / 32k tokens" over a thin bar. Hidden
//! while either is unknown; longer chats are summarised by the server (see the notice in answers).

use leptos::prelude::*;

use crate::context::AppCtx;
use crate::state::session::Session;

/// The gauge of a chat (nothing for a new one).
#[component]
pub fn ContextGauge(
    /// The open chat.
    session: Option<Session>,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let html = move || {
        let used = session?.thread.with(|thread| thread.last_usage(|answer| answer.with(|a| a.usage)))?;
        let model = ctx.model.get();
        let window = ctx.models.with(|list| {
            list.as_ref()?.models.iter().find(|m| model.as_ref() == Some(&m.id)).map(|m| m.context_tokens)
        })?;
        gauge_html(used, window)
    };
    view! { <div class="context-gauge" inner_html=move || html().unwrap_or_default()></div> }
}

/// Tokens in a few characters, rounded down (so a window of 4,096 reads "4k"): "950", "3.2k", "32k", "1M".
pub fn short_tokens(n: u64) -> String {
    let tenths = n / 100 % 10;
    match n {
        0..1_000 => n.to_string(),
        1_000..10_000 if tenths > 0 => format!("{}.{tenths}k", n / 1_000),
        1_000..1_000_000 => format!("{}k", n / 1_000),
        _ => format!("{}M", n / 1_000_000),
    }
}

/// The gauge: a meter for screen readers (the numbers, and the words as its value text) and, drawn, a bar (a
/// `<meter>`: its length needs no style attribute, which the Content-Security-Policy would refuse; past nine tenths
/// of the window it is drawn as a warning) and the words.
/// Nothing without a window.
pub fn gauge_html(used: u64, window: u64) -> Option<String> {
    if window == 0 {
        return None;
    }
    let words = format!("{} / {} tokens", short_tokens(used), short_tokens(window));
    Some(format!(
        "<div class=\"gauge\" role=\"meter\" aria-label=\"Context window used\" aria-valuemin=\"0\" \
         aria-valuemax=\"{window}\" aria-valuenow=\"{now}\" aria-valuetext=\"{words}\" data-testid=\"context-gauge\" \
         title=\"The tokens this branch used at its last answer, against the model's context window\">\
         <meter min=\"0\" max=\"{window}\" value=\"{now}\" low=\"{high}\" high=\"{high}\" optimum=\"0\" \
         aria-hidden=\"true\"></meter>\
         <span aria-hidden=\"true\">{words}</span></div>",
        now = used.min(window),
        high = window / 10 * 9,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_short_and_rounded_down() {
        let shown: Vec<String> = [0, 999, 1_000, 3_250, 4_096, 9_999, 10_500, 32_768, 200_000, 1_048_576]
            .into_iter()
            .map(short_tokens)
            .collect();
        assert_eq!(shown, ["0", "999", "1k", "3.2k", "4k", "9.9k", "10k", "32k", "200k", "1M"]);
    }

    #[test]
    fn the_gauge_is_a_meter_with_its_numbers_and_words() {
        let html = gauge_html(3_250, 32_768).expect("a window");
        assert!(html.contains("role=\"meter\"") && html.contains("aria-label=\"Context window used\""), "{html}");
        assert!(html.contains("aria-valuemax=\"32768\" aria-valuenow=\"3250\" aria-valuetext=\"3.2k / 32k tokens\""));
        assert!(html.contains(">3.2k / 32k tokens</span>"));
        assert!(html.contains("low=\"29484\" high=\"29484\""), "the bar warns near the end of the window: {html}");
        let over = gauge_html(5_000, 4_096).expect("a window");
        assert!(over.contains("aria-valuenow=\"4096\"") && over.contains("5k / 4k tokens"), "{over}");
        assert_eq!(gauge_html(10, 0), None, "no window, no gauge");
    }
}
