//! Small syntax highlighter for code blocks in chat messages.
//!
//! The well-known highlighters are either megabytes of wasm (grammar/regex tables) or need a C toolchain
//! (tree-sitter), so this is a compact hand-written tokenizer: one linear pass over the input with a table of
//! keywords, comment markers and string delimiters per language. It aims at "looks right" for typical
//! snippets, not at parsing correctly. Two properties are guaranteed for every input: all input text is
//! HTML-escaped (the only markup in the output is our own `<span class="tok-…">` wrappers), and the text
//! content of the output equals the input exactly.

/// Token classes; each maps to the CSS class `tok-{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Kw,
    Str,
    Num,
    Com,
    Fn,
    Ty,
    Op,
}

impl Kind {
    fn open_tag(self) -> &'static str {
        match self {
            Kind::Kw => "<span class=\"tok-kw\">",
            Kind::Str => "<span class=\"tok-str\">",
            Kind::Num => "<span class=\"tok-num\">",
            Kind::Com => "<span class=\"tok-com\">",
            Kind::Fn => "<span class=\"tok-fn\">",
            Kind::Ty => "<span class=\"tok-ty\">",
            Kind::Op => "<span class=\"tok-op\">",
        }
    }
}

/// Per-language lexical rules for the code tokenizer.
struct Lang {
    /// Space-separated; a linear scan over a few dozen words per identifier keeps the pass linear and tiny.
    keywords: &'static str,
    types: &'static str,
    /// SQL and YAML keywords are case-insensitive.
    ignore_case: bool,
    /// Rust/TS/Java/Go conventionally capitalise type names, so that is a cheap stand-in for type analysis.
    capitalized_types: bool,
    line_comments: &'static [&'static str],
    /// In shell-like languages `#` only starts a comment at a word start (`$#`, `${#x}`, `a#b` are not comments).
    hash_word_comment: bool,
    block_comment: Option<(&'static str, &'static str)>,
    quotes: &'static [u8],
    /// Quotes whose strings may span lines; other strings stop at the line end so an apostrophe in prose or an
    /// unterminated literal cannot colour the rest of the snippet.
    multiline_quotes: &'static [u8],
    /// Quotes inside which a backslash does not escape (Go raw strings, shell single quotes).
    raw_quotes: &'static [u8],
    triple_quotes: bool,
    /// Identifier prefixes that glue onto a following quote (`f"…"`, `b'…'`); case-insensitive except in Rust.
    string_prefixes: &'static [&'static str],
    /// Rust raw strings, char literals versus lifetimes, and `name!` macro calls.
    rust: bool,
    /// C preprocessor directives (`#include`) at a line start.
    preprocessor: bool,
    dollar_ident: bool,
    ops: &'static [u8],
}

const C_OPS: &[u8] = b"+-*/%=<>!&|^~?:";

const RUST: Lang = Lang {
    keywords: "as async await break const continue crate dyn else enum extern false fn for if impl in let loop \
        match mod move mut pub ref return self Self static struct super trait true type union unsafe use \
        where while yield macro_rules",
    types: "i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str",
    ignore_case: false,
    capitalized_types: true,
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"",
    multiline_quotes: b"\"",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &["b", "c"],
    rust: true,
    preprocessor: false,
    dollar_ident: false,
    ops: C_OPS,
};

const PYTHON: Lang = Lang {
    keywords: "False None True and as assert async await break class continue def del elif else except finally for \
        from global if import in is lambda nonlocal not or pass raise return try while with yield match case \
        self",
    types: "int float str bool list dict set tuple bytes object",
    ignore_case: false,
    capitalized_types: false,
    line_comments: &["#"],
    hash_word_comment: false,
    block_comment: None,
    quotes: b"\"'",
    multiline_quotes: b"",
    raw_quotes: b"",
    triple_quotes: true,
    string_prefixes: &["r", "u", "f", "b", "rb", "br", "fr", "rf"],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: b"+-*/%=<>!&|^~:@",
};

const JAVASCRIPT: Lang = Lang {
    keywords: "break case catch class const continue debugger default delete do else export extends finally for \
        function if import in instanceof let new return super switch this throw try typeof var void while \
        with yield async await of static get set from null undefined true false NaN Infinity interface type \
        enum implements namespace declare abstract private protected public readonly as keyof infer is \
        satisfies",
    types: "string number boolean bigint symbol any unknown never object",
    ignore_case: false,
    capitalized_types: true,
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"'`",
    multiline_quotes: b"`",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: true,
    ops: C_OPS,
};

const JSON: Lang = Lang {
    keywords: "true false null",
    types: "",
    ignore_case: false,
    capitalized_types: false,
    // Not JSON, but JSONC/JSON5 snippets are common and the markers cannot occur outside strings in real JSON.
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"",
    multiline_quotes: b"",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: b":",
};

const SQL: Lang = Lang {
    keywords: "select from where and or not insert into values update set delete create table drop alter add column \
        index primary key foreign references join inner left right outer full cross on as group by order \
        having limit offset distinct union all exists in is null like between case when then else end begin \
        commit rollback transaction view with returning default unique check constraint if replace asc desc \
        cascade trigger function procedure declare true false",
    types: "int integer bigint smallint text varchar char boolean bool date timestamp float real double numeric \
        decimal serial blob json jsonb uuid",
    ignore_case: true,
    capitalized_types: false,
    line_comments: &["--"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"'\"",
    multiline_quotes: b"'\"",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: b"+-*/%=<>!|",
};

const BASH: Lang = Lang {
    keywords: "if then else elif fi case esac for while until do done in function return exit break continue local \
        export readonly declare source alias unset shift",
    types: "",
    ignore_case: false,
    capitalized_types: false,
    line_comments: &[],
    hash_word_comment: true,
    block_comment: None,
    quotes: b"\"'`",
    multiline_quotes: b"\"'`",
    raw_quotes: b"'",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: true,
    ops: b"|&;<>=!",
};

const GO: Lang = Lang {
    keywords: "break case chan const continue default defer else fallthrough for func go goto if import interface \
        map package range return select struct switch type var nil true false iota",
    types: "bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune string uint \
        uint8 uint16 uint32 uint64 uintptr any",
    ignore_case: false,
    capitalized_types: true,
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"'`",
    multiline_quotes: b"`",
    raw_quotes: b"`",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: C_OPS,
};

const JAVA: Lang = Lang {
    keywords: "abstract assert break case catch class const continue default do else enum extends final finally for \
        goto if implements import instanceof interface native new package private protected public return \
        static strictfp super switch synchronized this throw throws transient try volatile while var record \
        yield sealed permits true false null",
    types: "boolean byte char short int long float double void",
    ignore_case: false,
    capitalized_types: true,
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"'",
    multiline_quotes: b"",
    raw_quotes: b"",
    // Java text blocks use `"""`.
    triple_quotes: true,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: true,
    ops: C_OPS,
};

const C_TYPES: &str = "char short int long float double void signed unsigned bool size_t ssize_t int8_t int16_t \
    int32_t int64_t uint8_t uint16_t uint32_t uint64_t FILE";

const C: Lang = Lang {
    keywords: "auto break case const continue default do else enum extern for goto if inline register restrict \
        return sizeof static struct switch typedef union volatile while NULL true false",
    types: C_TYPES,
    ignore_case: false,
    capitalized_types: false,
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"'",
    multiline_quotes: b"",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &["L", "u", "U", "u8"],
    rust: false,
    preprocessor: true,
    dollar_ident: false,
    ops: C_OPS,
};

const CPP: Lang = Lang {
    keywords: "auto break case const continue default do else enum extern for goto if inline register return sizeof \
        static struct switch typedef union volatile while NULL true false alignas alignof catch class \
        concept consteval constexpr constinit co_await co_return co_yield decltype delete explicit export \
        friend mutable namespace new noexcept nullptr operator override final private protected public \
        requires static_assert static_cast dynamic_cast reinterpret_cast const_cast template this \
        thread_local throw try typeid typename using virtual",
    types: C_TYPES,
    ignore_case: false,
    capitalized_types: false,
    line_comments: &["//"],
    hash_word_comment: false,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"'",
    multiline_quotes: b"",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &["L", "u", "U", "u8"],
    rust: false,
    preprocessor: true,
    dollar_ident: false,
    ops: C_OPS,
};

const YAML: Lang = Lang {
    keywords: "true false null yes no on off",
    types: "",
    ignore_case: true,
    capitalized_types: false,
    line_comments: &[],
    hash_word_comment: true,
    block_comment: None,
    quotes: b"\"'",
    multiline_quotes: b"",
    raw_quotes: b"'",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: b":",
};

const TOML: Lang = Lang {
    keywords: "true false",
    types: "",
    ignore_case: false,
    capitalized_types: false,
    line_comments: &["#"],
    hash_word_comment: false,
    block_comment: None,
    quotes: b"\"'",
    multiline_quotes: b"",
    raw_quotes: b"'",
    triple_quotes: true,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: b"=",
};

const GENERIC: Lang = Lang {
    keywords: "",
    types: "",
    ignore_case: false,
    capitalized_types: false,
    line_comments: &["//"],
    hash_word_comment: true,
    block_comment: Some(("/*", "*/")),
    quotes: b"\"'`",
    multiline_quotes: b"",
    raw_quotes: b"",
    triple_quotes: false,
    string_prefixes: &[],
    rust: false,
    preprocessor: false,
    dollar_ident: false,
    ops: C_OPS,
};

/// How a fence tag is highlighted.
enum Mode {
    /// No language given (or explicitly plain text): escaping only, since colouring numbers in prose looks odd.
    Plain,
    /// HTML/XML: comments and attribute strings only.
    Markup,
    Code(&'static Lang),
}

fn mode_for(lang: &str) -> Mode {
    match lang.to_ascii_lowercase().as_str() {
        "" | "text" | "txt" | "plain" | "plaintext" => Mode::Plain,
        "rust" | "rs" => Mode::Code(&RUST),
        "python" | "py" | "python3" => Mode::Code(&PYTHON),
        "javascript" | "js" | "jsx" | "mjs" | "cjs" | "typescript" | "ts" | "tsx" => Mode::Code(&JAVASCRIPT),
        "json" | "jsonc" | "json5" => Mode::Code(&JSON),
        "sql" => Mode::Code(&SQL),
        "bash" | "sh" | "shell" | "zsh" | "console" => Mode::Code(&BASH),
        "go" | "golang" => Mode::Code(&GO),
        "java" => Mode::Code(&JAVA),
        "c" | "h" => Mode::Code(&C),
        "cpp" | "c++" | "cc" | "cxx" | "hpp" => Mode::Code(&CPP),
        "yaml" | "yml" => Mode::Code(&YAML),
        "toml" => Mode::Code(&TOML),
        "html" | "htm" | "xml" | "xhtml" | "svg" => Mode::Markup,
        _ => Mode::Code(&GENERIC),
    }
}

/// HTML-escapes `code` and wraps recognised tokens in `<span class="tok-{kind}">` (kw, str, num, com, fn, ty, op).
#[must_use]
pub fn highlight(lang: &str, code: &str) -> String {
    // Spans add roughly a third in typical code; reserving avoids most regrowth on large blocks.
    let mut out = String::with_capacity(code.len() + code.len() / 3 + 16);
    match mode_for(lang) {
        Mode::Plain => push_escaped(&mut out, code),
        Mode::Markup => highlight_markup(code, &mut out),
        Mode::Code(spec) => highlight_code(spec, code, &mut out),
    }
    out
}

/// Escapes `&`, `<`, `>`, `"`, `'` for HTML text and attribute values.
#[must_use]
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        // `i` is an ASCII byte, hence a char boundary.
        out.push_str(&text[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

fn push_span(out: &mut String, kind: Kind, text: &str) {
    out.push_str(kind.open_tag());
    push_escaped(out, text);
    out.push_str("</span>");
}

fn highlight_code(lang: &Lang, code: &str, out: &mut String) {
    let mut i = 0;
    let mut plain_start = 0;
    while i < code.len() {
        let (kind, end) = next_token(lang, code, i);
        // Every token consumes at least one char, which keeps the pass linear and terminating.
        let end = end.max(i + char_len(code, i));
        if let Some(kind) = kind {
            push_escaped(out, &code[plain_start..i]);
            push_span(out, kind, &code[i..end]);
            plain_start = end;
        }
        i = end;
    }
    push_escaped(out, &code[plain_start..]);
}

/// Classifies the token starting at byte `i` (a char boundary); returns its class and end (a char boundary).
fn next_token(lang: &Lang, code: &str, i: usize) -> (Option<Kind>, usize) {
    let bytes = code.as_bytes();
    let b = bytes[i];
    if let Some(end) = comment_at(lang, code, i) {
        return (Some(Kind::Com), end);
    }
    if lang.preprocessor && b == b'#' && at_line_start(bytes, i) {
        let end = scan_ident(code, i + 1, false);
        if end > i + 1 {
            return (Some(Kind::Kw), end);
        }
    }
    if lang.quotes.contains(&b) {
        return (Some(Kind::Str), scan_string(lang, code, i));
    }
    if lang.rust && b == b'\'' {
        return rust_quote(code, i);
    }
    if b.is_ascii_digit() {
        return (Some(Kind::Num), scan_number(bytes, i));
    }
    if let Some(c) = code[i..].chars().next()
        && (c.is_alphabetic() || c == '_' || (lang.dollar_ident && c == '$'))
    {
        return identifier(lang, code, i);
    }
    if lang.ops.contains(&b) {
        let mut end = i + 1;
        while end < bytes.len() && lang.ops.contains(&bytes[end]) && comment_at(lang, code, end).is_none() {
            end += 1;
        }
        return (Some(Kind::Op), end);
    }
    (None, i + char_len(code, i))
}

fn char_len(code: &str, i: usize) -> usize {
    code[i..].chars().next().map_or(1, char::len_utf8)
}

/// End of the comment starting at `i`, if one starts there.
fn comment_at(lang: &Lang, code: &str, i: usize) -> Option<usize> {
    let rest = &code[i..];
    if let Some((open, close)) = lang.block_comment
        && rest.starts_with(open)
    {
        let body = i + open.len();
        return Some(code[body..].find(close).map_or(code.len(), |p| body + p + close.len()));
    }
    if lang.line_comments.iter().any(|marker| rest.starts_with(marker))
        || (lang.hash_word_comment && rest.starts_with('#') && at_word_start(code.as_bytes(), i))
    {
        return Some(line_end(code, i));
    }
    None
}

/// Position of the next `\n` (excluded from the token so line structure stays plain text), or the end.
fn line_end(code: &str, i: usize) -> usize {
    code[i..].find('\n').map_or(code.len(), |p| i + p)
}

fn at_word_start(bytes: &[u8], i: usize) -> bool {
    i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b';' | b'(' | b'|' | b'&')
}

fn at_line_start(bytes: &[u8], i: usize) -> bool {
    bytes[..i].iter().rev().take_while(|&&b| b != b'\n').all(|&b| b == b' ' || b == b'\t')
}

fn scan_ident(code: &str, i: usize, dollar: bool) -> usize {
    let mut end = i;
    for (offset, c) in code[i..].char_indices() {
        if c.is_alphanumeric() || c == '_' || (dollar && c == '$') {
            end = i + offset + c.len_utf8();
        } else {
            break;
        }
    }
    end
}

fn word_in(list: &str, word: &str, ignore_case: bool) -> bool {
    list.split_ascii_whitespace().any(|k| if ignore_case { k.eq_ignore_ascii_case(word) } else { k == word })
}

fn identifier(lang: &Lang, code: &str, i: usize) -> (Option<Kind>, usize) {
    let bytes = code.as_bytes();
    let end = scan_ident(code, i, lang.dollar_ident);
    let word = &code[i..end];
    let next = bytes.get(end).copied();
    if lang.rust
        && matches!(word, "r" | "br" | "cr")
        && let Some(string_end) = scan_rust_raw(code, end)
    {
        return (Some(Kind::Str), string_end);
    }
    if let Some(q) = next
        && (if lang.rust {
            lang.string_prefixes.contains(&word)
        } else {
            lang.string_prefixes.iter().any(|p| p.eq_ignore_ascii_case(word))
        })
    {
        if lang.quotes.contains(&q) {
            return (Some(Kind::Str), scan_string(lang, code, end));
        }
        if lang.rust && q == b'\'' && word == "b" {
            return match rust_quote(code, end) {
                (Some(kind), string_end) => (Some(kind), string_end),
                (None, _) => (None, end),
            };
        }
    }
    if word_in(lang.keywords, word, lang.ignore_case) {
        return (Some(Kind::Kw), end);
    }
    if word_in(lang.types, word, lang.ignore_case) {
        return (Some(Kind::Ty), end);
    }
    if next == Some(b'(') || (lang.rust && next == Some(b'!') && bytes.get(end + 1) != Some(&b'=')) {
        return (Some(Kind::Fn), end);
    }
    if lang.capitalized_types && word.starts_with(|c: char| c.is_uppercase()) {
        return (Some(Kind::Ty), end);
    }
    (None, end)
}

/// End of the string literal whose opening quote is at `i`; unterminated strings run to the line end or the
/// end of the input, depending on the quote.
fn scan_string(lang: &Lang, code: &str, i: usize) -> usize {
    let bytes = code.as_bytes();
    let quote = bytes[i];
    let escapes = !lang.raw_quotes.contains(&quote);
    if lang.triple_quotes && bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote) {
        let mut j = i + 3;
        while j < bytes.len() {
            if escapes && bytes[j] == b'\\' {
                j += 2;
            } else if bytes[j] == quote && bytes.get(j + 1) == Some(&quote) && bytes.get(j + 2) == Some(&quote) {
                return j + 3;
            } else {
                j += 1;
            }
        }
        return code.len();
    }
    let multiline = lang.multiline_quotes.contains(&quote);
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            // Skipping a byte may land inside a multi-byte char; we only ever stop on ASCII bytes or the end,
            // which are char boundaries, so that is harmless.
            b'\\' if escapes => j += 2,
            b'\n' if !multiline => return j,
            b if b == quote => return j + 1,
            _ => j += 1,
        }
    }
    code.len()
}

/// Rust raw string starting after the `r`/`br` prefix at `start`, if the hashes and quote follow.
fn scan_rust_raw(code: &str, start: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let hashes = bytes[start..].iter().take_while(|&&b| b == b'#').count();
    let body = start + hashes;
    if bytes.get(body) != Some(&b'"') {
        // `r#ident` is a raw identifier, not a string.
        return None;
    }
    let mut j = body + 1;
    while j < bytes.len() {
        if bytes[j] == b'"' && bytes[j + 1..].iter().take(hashes).filter(|&&b| b == b'#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(code.len())
}

/// A `'` in Rust is either a char literal or a lifetime/label; only the former is a string.
fn rust_quote(code: &str, i: usize) -> (Option<Kind>, usize) {
    let bytes = code.as_bytes();
    if bytes.get(i + 1) == Some(&b'\\') {
        let mut j = i + 2;
        // Escapes are short (`'\u{10FFFF}'` is the longest); bounding the scan keeps stray quotes cheap.
        while j < bytes.len() && j < i + 14 {
            match bytes[j] {
                b'\'' if j > i + 2 => return (Some(Kind::Str), j + 1),
                b'\n' => break,
                _ => j += 1,
            }
        }
        return (None, i + 1);
    }
    if let Some(c) = code[i + 1..].chars().next() {
        let close = i + 1 + c.len_utf8();
        if bytes.get(close) == Some(&b'\'') {
            return (Some(Kind::Str), close + 1);
        }
        if c.is_alphabetic() || c == '_' {
            return (None, scan_ident(code, i + 1, false));
        }
    }
    (None, i + 1)
}

fn scan_number(bytes: &[u8], i: usize) -> usize {
    let is_digit = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_digit);
    let is_alnum = |j: usize| bytes.get(j).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let mut j = i;
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O')) {
        j = i + 2;
        while is_alnum(j) {
            j += 1;
        }
        return j;
    }
    while is_digit(j) || bytes.get(j) == Some(&b'_') {
        j += 1;
    }
    if bytes.get(j) == Some(&b'.') && is_digit(j + 1) {
        j += 1;
        while is_digit(j) || bytes.get(j) == Some(&b'_') {
            j += 1;
        }
    }
    if matches!(bytes.get(j), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(j + 1), Some(b'+' | b'-')));
        if is_digit(j + 1 + sign) {
            j += 1 + sign;
            while is_digit(j) || bytes.get(j) == Some(&b'_') {
                j += 1;
            }
        }
    }
    // Type suffixes such as `u32`, `f64`, `n`, `L`.
    while is_alnum(j) {
        j += 1;
    }
    j
}

fn highlight_markup(code: &str, out: &mut String) {
    let bytes = code.as_bytes();
    let mut i = 0;
    let mut plain_start = 0;
    let mut in_tag = false;
    while i < bytes.len() {
        let token = if code[i..].starts_with("<!--") {
            in_tag = false;
            Some(code[i + 4..].find("-->").map_or(code.len(), |p| i + 4 + p + 3))
        } else if in_tag && (bytes[i] == b'"' || bytes[i] == b'\'') {
            let quote = bytes[i];
            Some(bytes[i + 1..].iter().position(|&b| b == quote).map_or(code.len(), |p| i + 1 + p + 1))
        } else {
            match bytes[i] {
                b'<' => in_tag = true,
                b'>' => in_tag = false,
                _ => {}
            }
            None
        };
        match token {
            Some(end) => {
                let kind = if bytes[i] == b'<' { Kind::Com } else { Kind::Str };
                push_escaped(out, &code[plain_start..i]);
                push_span(out, kind, &code[i..end]);
                plain_start = end;
                i = end;
            }
            None => i += char_len(code, i),
        }
    }
    push_escaped(out, &code[plain_start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strips our span tags and unescapes entities, i.e. recovers the text a browser would display.
    fn text_content(html: &str) -> String {
        let mut out = String::with_capacity(html.len());
        let mut rest = html;
        while let Some(pos) = rest.find(['<', '&']) {
            out.push_str(&rest[..pos]);
            rest = &rest[pos..];
            if rest.starts_with('<') {
                let close = rest.find('>').map_or(rest.len(), |p| p + 1);
                let tag = &rest[..close];
                assert!(
                    tag == "</span>" || (tag.starts_with("<span class=\"tok-") && tag.ends_with("\">")),
                    "unexpected markup {tag:?} in {html:?}"
                );
                rest = &rest[close..];
            } else {
                let entities = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"'), ("&#39;", '\'')];
                let Some((entity, ch)) = entities.iter().find(|(e, _)| rest.starts_with(e)) else {
                    panic!("bare & in {html:?}");
                };
                out.push(*ch);
                rest = &rest[entity.len()..];
            }
        }
        assert!(!rest.contains(['>', '"', '\'']), "unescaped char in {html:?}");
        out.push_str(rest);
        out
    }

    fn assert_roundtrip(lang: &str, code: &str) {
        let html = highlight(lang, code);
        assert_eq!(text_content(&html), code, "lang {lang}, html {html}");
    }

    const LANGS: &[&str] = &[
        "rust",
        "RS",
        "python",
        "py",
        "javascript",
        "js",
        "ts",
        "jsx",
        "tsx",
        "json",
        "sql",
        "bash",
        "sh",
        "shell",
        "zsh",
        "go",
        "java",
        "c",
        "cpp",
        "c++",
        "yaml",
        "yml",
        "toml",
        "html",
        "xml",
        "brainfuck",
        "",
        "text",
    ];

    const SAMPLES: &[&str] = &[
        "fn main() { println!(\"héllo {}\", 42_000u32); } // done",
        "let s = r#\"raw \"quoted\" string\"#; let c = 'x'; let l: &'a str = \"\\\"\";",
        "def f(x):\n    \"\"\"Doc\n    string\"\"\"\n    return x ** 2  # square\n",
        "const t = `template ${x}\nline`; // 🎉 emoji\r\nlet y = 0x1F + 1.5e-3;",
        "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\\\"c\"}}",
        "SELECT name, COUNT(*) FROM users WHERE id = 'x''y' -- comment\n/* block */",
        "echo \"$HOME\" | grep -v '#not' # real comment\nfor i in $(seq 1 3); do echo ${#i}; done",
        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(`raw\nstring`) }",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 1 << 3); return 0; }",
        "key: value # comment\nlist:\n  - 'single'\n  - \"double\"\nbool: Yes",
        "[table]\nname = \"x\"\nmulti = \"\"\"\nline\n\"\"\"\n# comment",
        "<div class=\"a\" data-x='y'>text & more<!-- comment --></div><script>alert(1)</script>",
        "unterminated \"string\nnext line /* open comment",
        "\t\ttabs\tand\r\nCRLF\r\n'unterminated",
        "日本語のテキスト \"引用\" 123 // コメント",
        "'\\u{1F600}' '\\' 'a 'static '",
        "r#\"never closed",
        "\"\"\"never closed triple",
        "0x 0b 1e 1e+ 1.2.3 9__9",
        "<!-- unterminated comment",
        "<a href=\"unterminated",
        "",
        "\\",
        "a\\",
        "\"\\",
        "&amp; &lt; < > \" '",
    ];

    #[test]
    fn escape_html_escapes_all_special_chars() {
        assert_eq!(escape_html("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape_html("plain ü"), "plain ü");
    }

    #[test]
    fn roundtrip_all_samples_all_languages() {
        for lang in LANGS {
            for sample in SAMPLES {
                assert_roundtrip(lang, sample);
            }
        }
    }

    #[test]
    fn random_inputs_never_panic_and_roundtrip() {
        let palette: Vec<char> =
            "abcXYZ_019 \t\n\r\"'`#/*-<>&;:!(){}[]\\$.=+eExr🎉ü日\u{0}\u{7f}\u{200b}".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..400 {
            let len = round % 97;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    palette[(seed % palette.len() as u64) as usize]
                })
                .collect();
            for lang in LANGS {
                assert_roundtrip(lang, &text);
            }
        }
    }

    #[test]
    fn rust_tokens() {
        let html = highlight("rust", "pub fn add(a: i32) -> Option<Foo> { let s = \"x\"; // c\n vec![1.5] }");
        assert!(html.contains("<span class=\"tok-kw\">pub</span>"));
        assert!(html.contains("<span class=\"tok-fn\">add</span>"));
        assert!(html.contains("<span class=\"tok-ty\">i32</span>"));
        assert!(html.contains("<span class=\"tok-ty\">Option</span>"));
        assert!(html.contains("<span class=\"tok-str\">&quot;x&quot;</span>"));
        assert!(html.contains("<span class=\"tok-com\">// c</span>"));
        assert!(html.contains("<span class=\"tok-fn\">vec</span>"));
        assert!(html.contains("<span class=\"tok-num\">1.5</span>"));
        assert!(html.contains("<span class=\"tok-op\">-&gt;</span>"));
    }

    #[test]
    fn rust_raw_strings_chars_and_lifetimes() {
        let html = highlight("rust", "r#\"a \" b\"# 'c' '\\n' &'a T b\"x\" r#type");
        assert!(html.contains("<span class=\"tok-str\">r#&quot;a &quot; b&quot;#</span>"));
        assert!(html.contains("<span class=\"tok-str\">&#39;c&#39;</span>"));
        assert!(html.contains("<span class=\"tok-str\">&#39;\\n&#39;</span>"));
        assert!(html.contains("&#39;a <span class=\"tok-ty\">T</span>"), "{html}");
        assert!(html.contains("<span class=\"tok-str\">b&quot;x&quot;</span>"));
        assert!(!html.contains("tok-str\">r#type"));
    }

    #[test]
    fn python_triple_quotes_prefixes_and_hash_comments() {
        let html = highlight("Python", "x = f'''a\n'b'\n''' # note\ndef g(): return None");
        assert!(
            html.contains("<span class=\"tok-str\">f&#39;&#39;&#39;a\n&#39;b&#39;\n&#39;&#39;&#39;</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"tok-com\"># note</span>"));
        assert!(html.contains("<span class=\"tok-kw\">def</span> <span class=\"tok-fn\">g</span>"));
        assert!(html.contains("<span class=\"tok-kw\">None</span>"));
    }

    #[test]
    fn javascript_backticks_span_lines_but_quotes_do_not() {
        let html = highlight("ts", "const a = `x\ny`; const b = 'open\nlet c: string = Foo.bar(1);");
        assert!(html.contains("<span class=\"tok-str\">`x\ny`</span>"));
        assert!(html.contains("<span class=\"tok-str\">&#39;open</span>\n<span class=\"tok-kw\">let</span>"));
        assert!(html.contains("<span class=\"tok-ty\">string</span>"));
        assert!(html.contains("<span class=\"tok-ty\">Foo</span>"));
        assert!(html.contains("<span class=\"tok-fn\">bar</span>"));
    }

    #[test]
    fn sql_keywords_are_case_insensitive_and_dash_comments() {
        let html = highlight("SQL", "Select * FROM t -- why\nwhere a = 'b'");
        assert!(html.contains("<span class=\"tok-kw\">Select</span>"));
        assert!(html.contains("<span class=\"tok-kw\">FROM</span>"));
        assert!(html.contains("<span class=\"tok-com\">-- why</span>"));
        assert!(html.contains("<span class=\"tok-str\">&#39;b&#39;</span>"));
    }

    #[test]
    fn bash_hash_comment_only_at_word_start() {
        let html = highlight("bash", "echo ${#arr} $# # real\nif true; then ls; fi");
        assert!(html.contains("<span class=\"tok-com\"># real</span>"));
        assert_eq!(html.matches("tok-com").count(), 1, "{html}");
        assert!(html.contains("<span class=\"tok-kw\">fi</span>"));
    }

    #[test]
    fn go_java_c_json_yaml_toml_and_markup() {
        assert!(highlight("go", "s := `raw\\`").contains("<span class=\"tok-str\">`raw\\`</span>"));
        assert!(highlight("go", "func f() error").contains("<span class=\"tok-ty\">error</span>"));
        assert!(highlight("java", "public class A { int x; }").contains("<span class=\"tok-ty\">A</span>"));
        let c = highlight("c", "#include <stdio.h>\nint x = 0xFF;");
        assert!(c.contains("<span class=\"tok-kw\">#include</span>"));
        assert!(c.contains("<span class=\"tok-num\">0xFF</span>"));
        assert!(highlight("c++", "nullptr").contains("<span class=\"tok-kw\">nullptr</span>"));
        let json = highlight("json", "{\"a\": -1.5e3, \"b\": true}");
        assert!(json.contains("<span class=\"tok-str\">&quot;a&quot;</span>"));
        assert!(json.contains("<span class=\"tok-num\">1.5e3</span>"));
        assert!(json.contains("<span class=\"tok-kw\">true</span>"));
        assert!(highlight("yml", "a: yes # c").contains("<span class=\"tok-com\"># c</span>"));
        assert!(
            highlight("toml", "x = '''a\nb'''")
                .contains("<span class=\"tok-str\">&#39;&#39;&#39;a\nb&#39;&#39;&#39;</span>")
        );
        let html = highlight("HTML", "<p class=\"x\">it's</p><!-- c -->");
        assert!(html.contains("<span class=\"tok-str\">&quot;x&quot;</span>"));
        assert!(html.contains("it&#39;s"), "apostrophes in text content are not strings: {html}");
        assert!(html.contains("<span class=\"tok-com\">&lt;!-- c --&gt;</span>"));
    }

    #[test]
    fn unknown_language_uses_generic_rules_and_plain_text_only_escapes() {
        let html = highlight("elixir", "x = \"s\" # c\n42");
        assert!(html.contains("<span class=\"tok-str\">&quot;s&quot;</span>"));
        assert!(html.contains("<span class=\"tok-com\"># c</span>"));
        assert!(html.contains("<span class=\"tok-num\">42</span>"));
        assert_eq!(highlight("", "a < 42 \"b\""), "a &lt; 42 &quot;b&quot;");
        assert_eq!(highlight("text", "42"), "42");
    }

    #[test]
    fn large_input_is_handled() {
        let unit = "fn f(x: u32) -> u32 { /* c */ let s = \"str\"; x * 2 } // end\n";
        let code = unit.repeat(100_000 / unit.len() + 1);
        for lang in ["rust", "python", "sql", "html", "bash", "unknown"] {
            assert_roundtrip(lang, &code);
        }
        let open = format!("/*{}", "x".repeat(100_000));
        assert_roundtrip("c", &open);
        let quotes = "'".repeat(100_000);
        assert_roundtrip("rust", &quotes);
    }
}
