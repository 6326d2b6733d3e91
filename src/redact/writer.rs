//! The log's last step: each line, whoever wrote it (mailcanary, or a crate
//! such as async-imap whose `trace` level prints the IMAP LOGIN command),
//! has every spelling of every secret alive in the process taken out before
//! it is written. Nothing upstream of this can forget to.

use super::Redactor;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// Wraps the log's writer (`fmt().with_writer(Redacting(std::io::stderr))`).
#[derive(Clone, Copy)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Line { inner: self.0.make_writer(), line: Vec::new() }
    }
}

/// One log line (tracing-subscriber makes a writer per event and writes
/// the whole event into it), held until dropped, then redacted and written.
pub struct Line<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for Line<W> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let redacted = current().redact_bytes(&self.line).into_owned();
        let _ = self.inner.write_all(&redacted);
        let _ = self.inner.flush();
    }
}

/// A redactor for the secrets alive now, made anew only when secrets were
/// made since the last one.
pub fn current() -> Arc<Redactor> {
    static CURRENT: Mutex<Option<(u64, Arc<Redactor>)>> = Mutex::new(None);
    let made = crate::secret::made();
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    match &*current {
        Some((at, redactor)) if *at == made => redactor.clone(),
        _ => {
            let redactor = Arc::new(Redactor::new(crate::secret::live().iter().map(|s| &**s)));
            *current = Some((made, redactor.clone()));
            redactor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    /// A writer into a shared buffer, as a test's stand-in for stderr.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn a_line_from_any_crate_loses_every_live_secret() {
        let password = Secret::new("Qz\"9\\xK-%+ é-imap");
        let out = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(Redacting(out.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let imap = password.expose().replace('\\', "\\\\").replace('"', "\\\"");
            let command = format!("LOGIN \"ops\" \"{imap}\"");
            tracing::trace!(target: "async_imap::imap_stream", "encode: input: Some(\"a1\"), {:?}", Ok::<_, ()>(&command));
            tracing::info!(token = password.expose(), "raw");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches(super::super::MARK).count(), 2, "{text}");
        assert!(!text.contains("xK-%+"), "{text}");
    }
}
