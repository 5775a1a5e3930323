//! Safe markdown → HTML for chat messages, including an incremental renderer for streamed answers.
//!
//! All text is treated as untrusted model output: raw HTML is shown as escaped text, link targets are limited
//! to `http`, `https`, `mailto` and relative URLs, images become plain links (rendering must never make the
//! browser fetch a URL chosen by the model), and code blocks get our own markup highlighted by
//! [`crate::highlight`].
//!
//! Incremental rendering relies on how `CommonMark` closes blocks: once a new top-level block has started, every
//! top-level block before it is closed for good and renders the same whatever text follows. "Started" needs
//! care while text streams in: the new block's first two lines must be complete (see `closed_prefix`), which
//! is slightly stricter than "every block but the last". [`IncrementalMarkdown`] keeps `stable_end`, the
//! offset where the still-open region starts, and on each push parses only `text[stable_end..]`. Finished
//! blocks are rendered once; the rest is re-rendered as the tail.
//!
//! Limitations:
//! - Link reference definitions are collected from finished blocks and offered to later parses through the
//!   broken-link callback, so definitions before a use always work. A definition that only arrives after the
//!   block using it was finished does not re-render that block (the reference stays literal text there), while
//!   [`render`] on the whole text would resolve it. If a label is defined twice, a definition still in the tail
//!   shadows the earlier one for tail blocks, whereas `CommonMark` says the first wins.
//! - Labels are matched with `to_lowercase`, an approximation of the Unicode case folding pulldown-cmark uses.
//! - Work per push is proportional to the unfinished region, so a single huge open block (say a 100 KB code
//!   fence streamed token by token) is re-parsed on every push; ordinary answers made of many blocks are cheap.
//! - `push` after `finish` starts a fresh region: the new text cannot continue a block that was finished.

use std::collections::BTreeMap;
use std::ops::Range;

use pulldown_cmark::{BrokenLink, CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

use crate::highlight::{escape_html, highlight};

const LINK_ATTRS: &str = r#" target="_blank" rel="noopener noreferrer nofollow""#;
const MAX_LANG_LEN: usize = 20;

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Reference definitions from finished blocks: normalised label → (destination, title).
type RefMap = BTreeMap<String, (String, String)>;

/// Renders a growing markdown text into a list of finished HTML blocks plus one HTML fragment for the unfinished tail.
#[derive(Debug, Default, Clone)]
pub struct IncrementalMarkdown {
    text: String,
    /// Byte offset (at a line start) where the unfinished region begins.
    stable_end: usize,
    finished: Vec<String>,
    tail: String,
    refs: RefMap,
    #[cfg(test)]
    parsed_bytes: usize,
}

impl IncrementalMarkdown {
    /// Creates an empty renderer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole text. Equivalent to `new()` + `push(text)` (answers are rendered by pushing their parts).
    #[cfg(test)]
    pub fn set(&mut self, text: &str) {
        *self = Self::new();
        self.push(text);
    }

    /// Appends streamed text.
    pub fn push(&mut self, delta: &str) {
        if delta.is_empty() {
            return;
        }
        self.text.push_str(delta);
        self.update(false);
    }

    /// HTML of blocks that can no longer change, in order; elements are only ever appended.
    #[must_use]
    pub fn finished_blocks(&self) -> &[String] {
        &self.finished
    }

    /// HTML of the trailing block(s) that may still change as text arrives.
    #[must_use]
    pub fn tail_html(&self) -> &str {
        &self.tail
    }

    /// The full text so far.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Call when the stream ends: moves the tail into finished blocks. Cheap when nothing is pending.
    pub fn finish(&mut self) {
        if self.stable_end < self.text.len() || !self.tail.is_empty() {
            self.update(true);
        }
    }

    fn update(&mut self, finish_all: bool) {
        let src = &self.text[self.stable_end..];
        #[cfg(test)]
        {
            self.parsed_bytes += src.len();
        }
        let Parsed { blocks, defs } = parse(src, &self.refs);
        let done = if finish_all { blocks.len() } else { closed_prefix(src, &blocks) };
        let new_start = if finish_all {
            src.len()
        } else if done == 0 {
            0
        } else {
            // Re-parse from the line start: leading indentation is part of the block's syntax (fence indent,
            // indented code), and nothing but blank lines or definitions separates it from the previous block.
            line_start(src, blocks[done].range.start).max(blocks[done - 1].range.end)
        };
        for def in defs.into_iter().filter(|def| def.span_end <= new_start) {
            // First definition wins, as in `CommonMark`.
            self.refs.entry(def.label).or_insert((def.dest, def.title));
        }
        let mut blocks = blocks.into_iter();
        for block in blocks.by_ref().take(done) {
            self.finished.push(render_block(src, block, false));
        }
        self.tail = blocks.map(|block| render_block(src, block, true)).collect();
        self.stable_end += new_start;
    }
}

/// Renders a complete markdown text at once (same safety rules): the reference the incremental renderer is
/// tested against.
#[cfg(test)]
#[must_use]
pub fn render(text: &str) -> String {
    render_blocks(text).concat()
}

/// Each top-level block rendered separately, exactly as the incremental renderer produces finished blocks.
#[cfg(test)]
fn render_blocks(text: &str) -> Vec<String> {
    parse(text, &RefMap::new()).blocks.into_iter().map(|block| render_block(text, block, false)).collect()
}

/// One top-level block: its source range and its events (offsets relative to the parsed slice).
struct Block<'a> {
    range: Range<usize>,
    events: Vec<(Event<'a>, Range<usize>)>,
}

/// A link reference definition seen by the parser.
struct RefDef {
    label: String,
    dest: String,
    title: String,
    span_end: usize,
}

struct Parsed<'a> {
    blocks: Vec<Block<'a>>,
    defs: Vec<RefDef>,
}

fn normalize_label(label: &str) -> String {
    label.split_ascii_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase()
}

fn parse<'a>(src: &'a str, refs: &RefMap) -> Parsed<'a> {
    // Definitions before `stable_end` are no longer in the parsed slice; the callback supplies them.
    let callback = |link: BrokenLink<'a>| -> Option<(CowStr<'a>, CowStr<'a>)> {
        let (dest, title) = refs.get(&normalize_label(&link.reference))?;
        Some((dest.clone().into(), title.clone().into()))
    };
    let iter = Parser::new_with_broken_link_callback(src, options(), Some(callback)).into_offset_iter();
    let defs = iter
        .reference_definitions()
        .iter()
        .map(|(label, def)| RefDef {
            label: normalize_label(label),
            dest: def.dest.to_string(),
            title: def.title.as_deref().unwrap_or_default().to_string(),
            span_end: def.span.end,
        })
        .collect();
    let mut blocks: Vec<Block<'a>> = Vec::new();
    let mut depth = 0usize;
    for (event, range) in iter {
        if depth == 0 {
            blocks.push(Block { range: range.clone(), events: Vec::new() });
        }
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        if let Some(block) = blocks.last_mut() {
            block.range.end = block.range.end.max(range.end);
            block.events.push((event, range));
        }
    }
    Parsed { blocks, defs }
}

/// How many leading blocks are closed for good: those followed by a block whose first two lines are complete.
///
/// A partial line can look like a new block and turn out to continue the previous one once complete
/// (`2` then `2. item` continuing an ordered list, `#` then `#hashtag` continuing a paragraph). pulldown-cmark
/// also decides whether a line starting with `|` interrupts a paragraph by looking at the next line (a table
/// delimiter row), so the line after the new block's first one must be complete too (it may be blank).
/// Only `\n` counts as a line end: pulldown-cmark reads a fence's info string up to `\n`, so after a bare
/// `\r` a line can still change meaning.
fn closed_prefix(src: &str, blocks: &[Block<'_>]) -> usize {
    blocks.iter().skip(1).take_while(|block| src[block.range.start..].matches('\n').nth(1).is_some()).count()
}

fn line_start(src: &str, pos: usize) -> usize {
    src[..pos].rfind(['\n', '\r']).map_or(0, |p| p + 1)
}

/// A code block whose text is being collected.
struct OpenCode {
    lang: String,
    text: String,
    highlighted: bool,
}

/// An open link or image; only the outermost one emits `<a>` because nested anchors are invalid HTML.
struct Anchor {
    emitted: bool,
    events_at_open: usize,
    /// Shown when an image has no alt text, so the link is not invisible.
    fallback: Option<String>,
}

/// Renders one top-level block; with `streaming`, code blocks that may still grow are not highlighted.
fn render_block<'a>(src: &str, block: Block<'a>, streaming: bool) -> String {
    let mut events: Vec<Event<'a>> = Vec::with_capacity(block.events.len());
    let mut code: Option<OpenCode> = None;
    let mut anchors: Vec<Anchor> = Vec::new();
    for (event, range) in block.events {
        if let Some(open) = code.as_mut() {
            match event {
                Event::Text(text) => open.text.push_str(&text),
                Event::End(TagEnd::CodeBlock) => {
                    events.push(Event::Html(code_block_html(open).into()));
                    code = None;
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let (lang, fenced) = match &kind {
                    CodeBlockKind::Fenced(info) => (sanitize_lang(info), true),
                    CodeBlockKind::Indented => (String::new(), false),
                };
                let highlighted = !streaming || code_block_closed(src, &range, fenced);
                code = Some(OpenCode { lang, text: String::new(), highlighted });
            }
            // Turning markup into text makes the HTML writer escape it, so it shows up verbatim.
            Event::Html(raw) | Event::InlineHtml(raw) | Event::InlineMath(raw) | Event::DisplayMath(raw) => {
                events.push(Event::Text(raw));
            }
            Event::FootnoteReference(name) => events.push(Event::Text(format!("[^{name}]").into())),
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => {
                // Each raw line keeps its line ending; the last one would only add a stray newline before `</p>`.
                if let Some(Event::Text(line)) = events.last_mut()
                    && line.ends_with(['\n', '\r'])
                {
                    *line = line.trim_end_matches(['\n', '\r']).to_string().into();
                }
                events.push(Event::End(TagEnd::Paragraph));
            }
            Event::Start(Tag::Link { link_type, dest_url, title, .. }) => {
                let href =
                    if link_type == LinkType::Email { format!("mailto:{dest_url}") } else { dest_url.to_string() };
                open_anchor(&mut events, &mut anchors, &href, &title, None);
            }
            Event::Start(Tag::Image { dest_url, title, .. }) => {
                open_anchor(&mut events, &mut anchors, &dest_url, &title, Some(dest_url.to_string()));
            }
            Event::End(TagEnd::Link | TagEnd::Image) => {
                if let Some(anchor) = anchors.pop() {
                    if events.len() == anchor.events_at_open
                        && let Some(fallback) = anchor.fallback
                    {
                        events.push(Event::Text(fallback.into()));
                    }
                    if anchor.emitted {
                        events.push(Event::InlineHtml("</a>".into()));
                    }
                }
            }
            other => events.push(other),
        }
    }
    let mut out = String::new();
    html::push_html(&mut out, events.into_iter());
    out
}

fn open_anchor(
    events: &mut Vec<Event<'_>>,
    anchors: &mut Vec<Anchor>,
    href: &str,
    title: &str,
    fallback: Option<String>,
) {
    let emit = !anchors.iter().any(|anchor| anchor.emitted);
    if emit {
        let mut tag = format!("<a href=\"{}\"", escape_href(sanitize_url(href)));
        if !title.is_empty() {
            tag.push_str(" title=\"");
            tag.push_str(&escape_html(title));
            tag.push('"');
        }
        if fallback.is_some() {
            tag.push_str(" class=\"image-link\"");
        }
        tag.push_str(LINK_ATTRS);
        tag.push('>');
        events.push(Event::InlineHtml(tag.into()));
    }
    anchors.push(Anchor { emitted: emit, events_at_open: events.len(), fallback });
}

/// Returns `url` if its scheme is allowed (or it is relative), otherwise `#`.
fn sanitize_url(url: &str) -> &str {
    if scheme_in(url, &["http", "https", "mailto"]) == Some(false) { "#" } else { url }
}

/// Returns `url` if it is an absolute `http` or `https` URL (what a citation may link to).
pub fn web_url(url: &str) -> Option<&str> {
    (scheme_in(url, &["http", "https"]) == Some(true)).then_some(url)
}

/// Whether the scheme a browser sees in `url` is one of `allowed`; `None` when it has none (a relative URL).
fn scheme_in(url: &str, allowed: &[&str]) -> Option<bool> {
    // Browsers skip leading C0 controls and spaces and drop tabs/newlines anywhere while parsing a URL, so
    // `\x01java\tscript:` still runs script; look at the scheme the way they do.
    let mut scheme = [0u8; 8];
    let mut len = 0;
    for c in url.trim_start_matches(|c: char| c <= ' ').chars() {
        match c {
            '\t' | '\n' | '\r' => {}
            ':' => {
                return Some(
                    allowed.iter().any(|ok| scheme.get(..len).is_some_and(|s| s.eq_ignore_ascii_case(ok.as_bytes()))),
                );
            }
            '/' | '?' | '#' => return None,
            // A longer or non-ASCII scheme is none of the allowed ones: it stays unmatched (`len` past the buffer).
            _ => {
                if let Some(byte) = scheme.get_mut(len) {
                    *byte = if c.is_ascii() { c as u8 } else { 0 };
                }
                len += 1;
            }
        }
    }
    None
}

/// Percent-encodes bytes that do not belong in a URL and HTML-escapes the rest, like pulldown-cmark's writer.
pub fn escape_href(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for &b in url.as_bytes() {
        match b {
            b'&' => out.push_str("&amp;"),
            b'\'' => out.push_str("&#39;"),
            // Characters that are safe inside a quoted href attribute and keep the URL's meaning.
            _ if b.is_ascii_alphanumeric() || b"-_.~!*();:@=+$,/?#[]%".contains(&b) => out.push(char::from(b)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
    }
    out
}

/// First word of the info string, restricted to `[A-Za-z0-9_+-]` so it is safe in a class attribute.
fn sanitize_lang(info: &str) -> String {
    let word = info.split_whitespace().next().unwrap_or_default();
    // `rust,ignore` style attributes follow a comma.
    let word = word.split(',').next().unwrap_or_default();
    word.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-')).take(MAX_LANG_LEN).collect()
}

/// Whether a code block in streamed text can no longer grow.
fn code_block_closed(src: &str, range: &Range<usize>, fenced: bool) -> bool {
    // Any content after the block means the parser has already closed it.
    let followed = src.get(range.end..).is_some_and(|rest| !rest.trim().is_empty());
    followed || (fenced && src.get(range.clone()).is_some_and(ends_with_closing_fence))
}

/// Whether the last line of a fenced block's source is a closing fence matching its opening fence.
fn ends_with_closing_fence(block_src: &str) -> bool {
    let mut lines = block_src.lines();
    let (Some(first), Some(last)) = (lines.next(), lines.next_back()) else {
        return false;
    };
    let Some(pos) = first.find(['`', '~']) else {
        return false;
    };
    let fence = first.as_bytes()[pos];
    let open_len = first.as_bytes()[pos..].iter().take_while(|&&b| b == fence).count();
    let last = last.trim_end();
    let run = last.as_bytes().iter().rev().take_while(|&&b| b == fence).count();
    // Container prefixes (blockquote markers, list indentation) may precede a nested closing fence.
    run >= open_len && last[..last.len() - run].trim_matches([' ', '\t', '>']).is_empty()
}

fn code_block_html(code: &OpenCode) -> String {
    let label = if code.lang.is_empty() { "text" } else { code.lang.as_str() };
    let body = if code.highlighted { highlight(&code.lang, &code.text) } else { escape_html(&code.text) };
    format!(
        "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">{label}</span>\
         <button type=\"button\" class=\"copy-code\" data-testid=\"copy-code\" aria-label=\"Copy code\">Copy</button>\
         </div><pre><code class=\"language-{label}\">{body}</code></pre></div>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders every block as the streaming tail would (open code blocks unhighlighted).
    fn render_streaming(text: &str) -> String {
        parse(text, &RefMap::new()).blocks.into_iter().map(|block| render_block(text, block, true)).collect()
    }

    /// Splits `text` into chunks of `size` bytes, extended to the next char boundary.
    fn chunks(text: &str, size: usize) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + size).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            out.push(&text[start..end]);
            start = end;
        }
        out
    }

    fn stream(text: &str, size: usize) -> IncrementalMarkdown {
        let mut md = IncrementalMarkdown::new();
        for chunk in chunks(text, size) {
            md.push(chunk);
        }
        md
    }

    const SAMPLES: &[&str] = &[
        "# Title\n\nSome *emphasis* and **strong** text.\n\n## Sub\n\nMore text with `code` and ~~strike~~.\n",
        "- item 1\n  - nested a\n  - nested b\n- item 2\n\n  continued para in item 2\n\n1. one\n2. two\n\n\
         10. ten\n11. eleven\n\nAfter list.\n",
        "Intro:\n\n```rust\nfn main() {\n    println!(\"hi <b>\");\n}\n```\n\n~~~python title\nprint('x')\n\
         ~~~\n\n    indented code\n    more\n\ntext\n",
        "| a | b |\n|---|:-:|\n| 1 | 2 |\n| <i>3</i> | 4 |\n\nafter table\n\n| x |\n|---|\n| y |",
        "> quote line 1\nlazy continuation\n> > nested\n\n> second quote\n\npara\n",
        "<script>alert(1)</script>\n\nText <img src=x onerror=alert(1)> inline.\n\n<div>\n<b>bold</b>\n\
         </div>\n\n<!-- comment -->\n",
        "[ok](https://example.com \"T\") [bad](javascript:alert(1)) <https://auto.link> <me@example.com> \
         ![alt](http://img/x.png) ![](data:image/png;base64,xx) [ref][r1]\n\n[r1]: https://ref.example/ 'Ref'\n\n\
         Use [r1] again and [R1][].\n",
        "This is **bold text that spans** many *chunks* and ***both*** with `inline code` plus a hard  \nbreak and \
         escaped \\*stars\\* and a_b_c.\n",
        "Heading\n=======\n\nSub heading\n---\n\n***\n\n- - -\n\npara\n",
        "- [ ] todo ü\n- [x] done 日本語 🎉\n\nПривет, мир! Ünïcödé — “quotes”\n",
        "# Title\r\n\r\nLine one\r\nline two\r\n\r\n```js\r\nlet x = 1;\r\n```\r\n\r\n- a\r\n- b\r\n\r\n\
         | h |\r\n|---|\r\n| c |\r\n",
        "1. first\n\n2. second\n\n3\n\n# heading\npara\n#hashtag\n#\n\n12) twelve\n\n13) thirteen",
        "text\n\n```go\nfunc main() {\n\n\n}\n",
        "[a]: https://a.example\n\nSee [a] and [b].\n\n[b]: <https://b.example> \"B\"\n\nMore [b][] text.\n\n\
         - list with [a]\n",
        "> - quote list\n>   ```sh\n>   echo in quote\n>   ```\n\n* star list\n\n+ plus list\n\n\
         - [link [nested](https://n)](https://o)",
        "para without trailing newline and a [link](</path with spaces>) and ![img [alt](x)](y)",
        // pulldown-cmark looks one line ahead for a table delimiter row before ending a lazy list paragraph.
        "- a\n|x\n    |-y\n\nend\n",
        // pulldown-cmark reads a fence info string up to `\n`, so a bare `\r` does not end it.
        "p\n```x\r-->`y\n\nq\n",
    ];

    #[test]
    fn streaming_in_chunks_matches_full_render() {
        for sample in SAMPLES {
            let expected = render(sample);
            for size in 1..=7 {
                let mut md = stream(sample, size);
                md.finish();
                assert_eq!(md.finished_blocks().concat(), expected, "chunk size {size}, sample {sample:?}");
                assert!(md.tail_html().is_empty());
                assert_eq!(md.text(), *sample);
            }
        }
    }

    #[test]
    fn finished_blocks_are_final_at_every_step() {
        for sample in SAMPLES {
            let final_blocks = render_blocks(sample);
            for size in [1, 3, 7] {
                let mut md = IncrementalMarkdown::new();
                for chunk in chunks(sample, size) {
                    md.push(chunk);
                    let done = md.finished_blocks();
                    assert_eq!(done, &final_blocks[..done.len()], "size {size}, text so far {:?}", md.text());
                    // Finished part plus tail is what a full parse of the prefix shows.
                    let shown = format!("{}{}", done.concat(), md.tail_html());
                    assert_eq!(shown, render_streaming(md.text()), "size {size}, text so far {:?}", md.text());
                }
            }
        }
    }

    #[test]
    fn raw_html_is_escaped() {
        let html = render("<script>alert(1)</script>\n\nHi <img src=x onerror=alert(1)> <b>x</b>\n");
        assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert_eq!(render("<div>\n<b>x</b>\n</div>\n"), "<p>&lt;div&gt;\n&lt;b&gt;x&lt;/b&gt;\n&lt;/div&gt;</p>\n");
    }

    #[test]
    fn dangerous_url_schemes_become_hash() {
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " \u{1}javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:x",
            "data:text/html,<b>",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "unknown:thing",
        ] {
            assert_eq!(sanitize_url(bad), "#", "{bad:?}");
        }
        for good in ["https://a.b/c?d#e", "HTTP://x", "mailto:a@b.c", "/rel", "#frag", "./x:y", "rel/a:b", "", "?q=a:b"]
        {
            assert_eq!(sanitize_url(good), good);
        }
        // Citations link only to absolute web addresses.
        for (url, linked) in [("https://a.b/c", true), ("HTTP://x", true), ("mailto:a@b.c", false), ("/rel", false)] {
            assert_eq!(web_url(url).is_some(), linked, "{url}");
        }
        assert_eq!(web_url(" \u{1}java\tscript:alert(1)"), None);
        let html = render("[a](javascript:alert(1)) [b](java&#x09;script:x) <JAVASCRIPT:alert(1)> [c](data:x)");
        assert_eq!(html.matches("href=\"#\"").count(), 4, "{html}");
        assert!(!html.to_lowercase().contains("href=\"javascript"));
    }

    #[test]
    fn links_get_target_and_rel_and_escaped_attributes() {
        let html = render("[x](https://e.com/?a=1&b=\"2\" \"ti\\\"tle\") <me@ex.com>");
        assert!(
            html.contains(
                "<a href=\"https://e.com/?a=1&amp;b=%222%22\" title=\"ti&quot;tle\" target=\"_blank\" \
             rel=\"noopener noreferrer nofollow\">x</a>"
            ),
            "{html}"
        );
        assert!(html.contains("<a href=\"mailto:me@ex.com\" target=\"_blank\""));
        assert!(render("[s](</a b/ü'>)").contains("<a href=\"/a%20b/%C3%BC&#39;\""));
    }

    #[test]
    fn images_render_as_links_not_img() {
        let html = render("![a cat](https://x/cat.png \"T\") ![](https://x/empty.png) [![inner](i.png)](https://o)");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("class=\"image-link\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">a cat</a>"));
        assert!(html.contains(">https://x/empty.png</a>"), "empty alt falls back to the URL: {html}");
        assert_eq!(html.matches("<a ").count(), 3, "nested image inside link adds no anchor: {html}");
    }

    #[test]
    fn code_block_markup_highlighting_and_lang_sanitizing() {
        let html = render("```Rust\nfn f() {}\n```\n");
        assert_eq!(
            html,
            "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">Rust</span><button \
             type=\"button\" class=\"copy-code\" data-testid=\"copy-code\" aria-label=\"Copy code\">Copy</button></div>\
             <pre><code class=\"language-Rust\"><span class=\"tok-kw\">fn</span> <span class=\"tok-fn\">f</span>() {}\n\
             </code></pre></div>\n"
        );
        let html = render("```\"><script>x,y\n<b>\n```\n");
        assert!(html.contains("<span class=\"code-lang\">scriptx</span>"), "{html}");
        assert!(html.contains("&lt;") && !html.contains("<b>") && !html.contains("<script"), "{html}");
        let long = render(&format!("```{}\nx\n```\n", "a".repeat(50)));
        assert!(long.contains(&format!("language-{}\"", "a".repeat(MAX_LANG_LEN))));
        let indented = render("    let x = 1;\n");
        assert!(indented.contains("<span class=\"code-lang\">text</span>") && indented.contains("language-text"));
        assert!(!render("```\ncode\n```").contains("<pre><code>"), "default pulldown-cmark markup is never used");
    }

    #[test]
    fn open_fence_stays_in_tail_unhighlighted_until_closed() {
        let mut md = IncrementalMarkdown::new();
        md.push("Intro\n\n```rust\nfn main() {}\n\nlet x = 1;\n");
        assert_eq!(md.finished_blocks().len(), 1);
        assert!(md.tail_html().contains("<code class=\"language-rust\">fn main() {}\n\nlet x = 1;\n</code>"));
        assert!(!md.tail_html().contains("tok-"));
        md.push("```");
        assert_eq!(md.finished_blocks().len(), 1);
        assert!(md.tail_html().contains("<span class=\"tok-kw\">fn</span>"), "closed fence is highlighted");
        md.push("\n\nAfter\n");
        assert_eq!(md.finished_blocks().len(), 1, "the next block's second line is not complete yet");
        md.push("\n");
        assert_eq!(md.finished_blocks().len(), 2);
        assert!(md.finished_blocks()[1].contains("<span class=\"tok-kw\">let</span>"));
        assert_eq!(md.tail_html(), "<p>After</p>\n");
    }

    #[test]
    fn list_continuing_after_blank_line_is_not_split() {
        let text = "- a\n\n- b\n\n  more b\n\n- c\n\nEnd\n\n";
        let mut md = stream(text, 1);
        assert_eq!(md.finished_blocks().len(), 1);
        assert_eq!(md.finished_blocks()[0].matches("<ul>").count(), 1);
        assert_eq!(md.finished_blocks()[0].matches("<li>").count(), 3);
        md.finish();
        assert_eq!(md.finished_blocks().concat(), render(text));
    }

    #[test]
    fn partial_lines_do_not_close_previous_block_early() {
        let mut md = IncrementalMarkdown::new();
        md.push("1. a\n\n2");
        assert!(md.finished_blocks().is_empty(), "`2` may still become a list item");
        md.push(". b\n\nx\n");
        assert!(md.finished_blocks().is_empty(), "the next block needs two complete lines");
        md.push("\n");
        assert_eq!(md.finished_blocks().len(), 1);
        assert!(md.finished_blocks()[0].contains("<li>\n<p>b</p>\n</li>"), "{:?}", md.finished_blocks());
        let mut md = IncrementalMarkdown::new();
        md.push("para\n#");
        md.push("hashtag\n");
        md.finish();
        assert_eq!(md.finished_blocks(), ["<p>para\n#hashtag</p>\n"]);
    }

    #[test]
    fn setext_heading_rewrites_only_the_tail() {
        let mut md = IncrementalMarkdown::new();
        md.push("First\n\nTitle\n");
        assert!(md.finished_blocks().is_empty());
        assert_eq!(md.tail_html(), "<p>First</p>\n<p>Title</p>\n");
        md.push("===\n");
        assert_eq!(md.finished_blocks(), ["<p>First</p>\n"]);
        assert_eq!(md.tail_html(), "<h1>Title</h1>\n");
    }

    #[test]
    fn table_streamed_row_by_row() {
        let mut md = IncrementalMarkdown::new();
        md.push("Intro\n\n| a | b |\n");
        assert!(md.finished_blocks().is_empty(), "header row alone may still be paragraph text");
        md.push("|---|---|\n");
        assert_eq!(md.finished_blocks().len(), 1);
        assert!(md.tail_html().starts_with("<table>"));
        md.push("| 1 | 2 |\n");
        md.push("| 3 | 4 |\n");
        assert_eq!(md.finished_blocks().len(), 1);
        assert_eq!(md.tail_html().matches("<tr>").count(), 3);
        md.push("\nAfter\n\n");
        assert_eq!(md.finished_blocks().len(), 2);
        assert!(md.finished_blocks()[1].contains("<td>4</td>"));
    }

    #[test]
    fn crlf_and_multibyte_text() {
        let text = "Ünïcödé 🎉\r\n\r\n- 日本\r\n- 語\r\n\r\n```py\r\nprint('é')\r\n```\r\n\r\nend";
        for size in 1..=7 {
            let mut md = stream(text, size);
            assert!(md.finished_blocks().len() >= 2);
            md.finish();
            assert_eq!(md.finished_blocks().concat(), render(text));
        }
        assert!(render(text).contains("<p>Ünïcödé 🎉</p>"));
    }

    #[test]
    fn reference_definitions_before_use_resolve_in_later_blocks() {
        let mut md = IncrementalMarkdown::new();
        md.push("[Doc Ref]: https://docs.example/ \"Docs\"\n\nIntro\n\nSecond\n\n");
        assert_eq!(md.finished_blocks().len(), 1);
        md.push("See [doc   ref] now.\n\nEnd\n");
        md.finish();
        assert!(md.finished_blocks()[2].contains("<a href=\"https://docs.example/\" title=\"Docs\""));
        assert_eq!(md.finished_blocks().concat(), render(md.text()));
    }

    #[test]
    fn reference_definition_after_finished_block_is_documented_limitation() {
        let text = "Use [late].\n\nNext para\n\n[late]: https://late.example\n";
        let mut md = stream(text, 1);
        md.finish();
        assert!(md.finished_blocks()[0].contains("[late]"), "finished block is not re-rendered");
        assert!(render(text).contains("href=\"https://late.example\""));
    }

    #[test]
    fn set_equals_new_plus_push_and_finish_moves_tail() {
        let text = SAMPLES[2];
        let mut set = IncrementalMarkdown::new();
        set.push("stale");
        set.set(text);
        let mut pushed = IncrementalMarkdown::new();
        pushed.push(text);
        assert_eq!(set.finished_blocks(), pushed.finished_blocks());
        assert_eq!(set.tail_html(), pushed.tail_html());
        assert_eq!(set.text(), text);
        assert!(!set.tail_html().is_empty());
        let before = set.finished_blocks().len();
        set.finish();
        assert!(set.finished_blocks().len() > before && set.tail_html().is_empty());
        assert_eq!(set.finished_blocks().concat(), render(text));
    }

    #[test]
    fn parsing_per_push_is_bounded() {
        let text: String = (0..200)
            .map(|i| format!("Paragraph {i} has some **bold** words and a [link](https://example.com/{i}) here.\n\n"))
            .collect();
        let mut md = stream(&text, 4);
        let ratio = md.parsed_bytes as f64 / text.len() as f64;
        assert!(md.parsed_bytes < 50 * text.len(), "parsed {ratio:.1}× the text length");
        md.finish();
        assert_eq!(md.finished_blocks().len(), 200);
        assert_eq!(md.finished_blocks().concat(), render(&text));
    }

    #[test]
    fn large_answer_renders() {
        let unit =
            "## Section\n\nSome text with **bold** and `code`.\n\n```rust\nfn f() -> u32 { 42 }\n```\n\n- a\n- b\n\n";
        let text = unit.repeat(100_000 / unit.len() + 1);
        let mut md = stream(&text, 16);
        md.finish();
        assert_eq!(md.finished_blocks().concat(), render(&text));
    }
    #[test]
    fn random_markdown_streams_like_full_parse() {
        let fragments = [
            "- ",
            "1. ",
            "2",
            ".",
            ")",
            "\n",
            "\n\n",
            "  ",
            "    ",
            "# ",
            "#",
            "```",
            "~~~",
            "rust",
            "> ",
            "| a ",
            "|",
            "---",
            "|---|",
            "*",
            "**",
            "_",
            "`",
            "text",
            "ü",
            "🎉",
            "\r\n",
            "\r",
            "<div>",
            "</div>",
            "<!--",
            "-->",
            "[x]",
            "(http://a)",
            "=",
            "===",
            "\t",
            "+ ",
            "* ",
            "[ ] ",
            "![i]",
            "\\",
            "<pre>",
            "</pre>",
            "| a |\n",
            "|---|\n",
            "===\n",
            "1) ",
            "  - ",
            ">",
            "***",
            "<script>",
            "\n\n- ",
            "\n1. ",
            "```\n",
            "\n```",
        ];
        // xorshift64: deterministic, no dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..400 {
            let count = next() % 60;
            let text: String = (0..count).map(|_| fragments[(next() % fragments.len() as u64) as usize]).collect();
            let final_blocks = render_blocks(&text);
            let mut md = IncrementalMarkdown::new();
            while md.text().len() < text.len() {
                let start = md.text().len();
                let mut end = (start + 1 + (next() % 6) as usize).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                md.push(&text[start..end]);
                let done = md.finished_blocks();
                assert!(done.len() <= final_blocks.len() && done == &final_blocks[..done.len()], "{:?}", md.text());
                let shown = format!("{}{}", done.concat(), md.tail_html());
                assert_eq!(shown, render_streaming(md.text()), "{:?}", md.text());
            }
            md.finish();
            assert_eq!(md.finished_blocks(), final_blocks, "{text:?}");
        }
    }
}
