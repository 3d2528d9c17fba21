//! The log subscriber: `PORTCULLIS_LOG`'s filter, text or JSON lines on
//! stderr, and on every line written while a request is served, that
//! request's id (`portcullis_web::trace::serving`).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::Config;

/// Installs the subscriber for the process.
pub fn init(config: &Config) {
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::new(&config.log);
    // As the builder's own `init`: also takes in the `log` crate's records.
    use tracing_subscriber::util::SubscriberInitExt as _;
    subscriber(filter, std::io::stderr, config.log_json, ansi).init();
}

/// Lines of `json` or text (with `ansi` colours), filtered by `filter`,
/// written to `writer`.
fn subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    json: bool,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    if json {
        Box::new(builder.json().event_format(WithRequestId::json(format::format().json())).finish())
    } else if ansi {
        Box::new(builder.event_format(WithRequestId::text(format::format().with_ansi(true))).finish())
    } else {
        // Plain `name=value` fields, without the styling calls a terminal gets.
        use tracing_subscriber::field::MakeExt as _;
        let fields = format::debug_fn(|w, field, value| match field.name() {
            "message" => write!(w, "{value:?}"),
            name => write!(w, "{name}={value:?}"),
        })
        .delimited(" ");
        Box::new(
            builder.fmt_fields(fields).event_format(WithRequestId::text(format::format().with_ansi(false))).finish(),
        )
    }
}

/// Writes a line with `inner`, then adds the id of the request it was
/// written for, if any: as a last `request_id=…` field of a text line, as a
/// `request_id` member of a JSON one. Lines written outside a request are
/// `inner`'s alone.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequestId<F> {
    fn text(inner: F) -> Self {
        Self { inner, json: false }
    }
    fn json(inner: F) -> Self {
        Self { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(id) = portcullis_web::trace::request_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        // An id from a proxy may hold bytes a log line must not: as the
        // span did before, those lines name no id.
        let id = id.to_str().unwrap_or("");
        // The inner format sets its own colours; the line is its, less the newline.
        let mut line = String::with_capacity(256);
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        if self.json {
            let id = serde_json::to_string(id).map_err(|_| fmt::Error)?;
            match line.strip_prefix('{') {
                Some(rest) if rest.starts_with('}') => writeln!(writer, "{{\"request_id\":{id}{rest}"),
                Some(rest) => writeln!(writer, "{{\"request_id\":{id},{rest}"),
                None => writeln!(writer, "{line}"),
            }
        } else {
            writeln!(writer, "{line} request_id={id}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::HeaderValue;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Lines {
        type Writer = Lines;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// What a request with `id` and, after it, the process write with this format.
    fn lines(json: bool, ansi: bool, id: &'static str) -> Vec<String> {
        let out = Lines::default();
        let sub = subscriber(tracing_subscriber::EnvFilter::new("info"), out.clone(), json, ansi);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        tracing::subscriber::with_default(sub, || {
            rt.block_on(portcullis_web::trace::serving(HeaderValue::from_static(id), async {
                tokio::task::yield_now().await;
                tracing::error!(error = "disk full", "request failed");
            }));
            tracing::info!("shutting down");
        });
        let bytes = out.0.lock().expect("lines").clone();
        String::from_utf8(bytes).expect("utf-8").lines().map(str::to_owned).collect()
    }

    #[test]
    fn text_lines_of_a_request_end_with_its_id() {
        for ansi in [false, true] {
            let l = lines(false, ansi, "N54GFugu7u-k2mqL-1");
            assert_eq!(l.len(), 2, "{l:?}");
            assert!(l[0].contains("request failed") && l[0].contains("disk full"), "{}", l[0]);
            assert!(l[0].ends_with(" request_id=N54GFugu7u-k2mqL-1"), "{}", l[0]);
            assert!(l[1].contains("shutting down") && !l[1].contains("request_id"), "{}", l[1]);
            assert_eq!(l[0].contains('\u{1b}'), ansi, "colours only for a terminal: {}", l[0]);
        }
    }

    #[test]
    fn json_lines_of_a_request_carry_its_id_as_a_member() {
        let l = lines(true, false, "nginx \"7\"\tx");
        assert_eq!(l.len(), 2, "{l:?}");
        let first: serde_json::Value = serde_json::from_str(&l[0]).expect("json");
        assert_eq!(first["request_id"], "nginx \"7\"\tx");
        assert_eq!(first["fields"]["message"], "request failed");
        assert_eq!(first["fields"]["error"], "disk full");
        assert_eq!(first["level"], "ERROR");
        let second: serde_json::Value = serde_json::from_str(&l[1]).expect("json");
        assert_eq!(second["fields"]["message"], "shutting down");
        assert!(second.get("request_id").is_none(), "{second}");
    }
}
