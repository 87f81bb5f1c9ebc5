//! The output thread's side: connection records in the chosen format, to a [`Sink`].

use std::io::Write;
use std::sync::Arc;

use super::sink::Sink;
use super::{ConnFormat, json, zeek};
use crate::classify::ports::PortDb;
use crate::flow::ConnRecord;
use crate::time::Micros;

/// Writes connection records to one destination.
pub struct ConnWriter {
    sink: Sink,
    format: ConnFormat,
    /// A Zeek row being built.
    line: Vec<u8>,
    /// JSON lines not yet handed to the sink: bytes, not a `String` (see `text::Text`).
    /// Lines collect here up to [`CHUNK`] and go to the sink in one piece, which its
    /// `BufWriter` passes straight to the file instead of copying each line into its buffer.
    bytes: Vec<u8>,
    header_done: bool,
    db: Arc<PortDb>,
    ports: json::RecordCache,
    pub written: u64,
}

/// How many bytes of JSON lines collect before they go to the sink: the sink's buffer size,
/// so that a chunk is written without a copy.
const CHUNK: usize = super::sink::BUFFER;

impl ConnWriter {
    pub fn new(sink: Sink, format: ConnFormat, db: Arc<PortDb>) -> Self {
        ConnWriter {
            sink,
            format,
            line: Vec::new(),
            bytes: Vec::new(),
            header_done: false,
            db,
            ports: json::RecordCache::default(),
            written: 0,
        }
    }

    pub fn write(&mut self, r: &ConnRecord) -> std::io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            if self.format == ConnFormat::Zeek {
                zeek::write_header(&mut self.sink, r.start)?;
            }
        }
        match self.format {
            ConnFormat::Json => {
                json::append_flow(&mut self.bytes, r, &self.db, &mut self.ports);
                if self.bytes.len() >= CHUNK {
                    self.drain()?;
                }
            }
            ConnFormat::Zeek => zeek::write_row(&mut self.sink, r, &mut self.line, &self.db)?,
        }
        self.written += 1;
        Ok(())
    }

    /// Hands the JSON lines collected so far to the sink. Anything else written to it (the
    /// alerts and stats that share standard output, a Zeek footer) must come after this.
    pub fn drain(&mut self) -> std::io::Result<()> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let res = self.sink.write_all(&self.bytes);
        self.bytes.clear();
        res
    }

    /// Writes the trailer (Zeek's `#close`) and flushes.
    pub fn finish(&mut self, end: Micros) -> std::io::Result<()> {
        self.drain()?;
        if self.format == ConnFormat::Zeek {
            if !self.header_done {
                zeek::write_header(&mut self.sink, end)?;
                self.header_done = true;
            }
            zeek::write_footer(&mut self.sink, end)?;
        }
        self.sink.flush()
    }

    /// The destination, for alerts or stats that share it (both to standard output); the
    /// caller has drained the records first ([`ConnWriter::drain`]).
    pub fn sink(&mut self) -> &mut Sink {
        debug_assert!(
            self.bytes.is_empty(),
            "records not drained before sharing the sink"
        );
        &mut self.sink
    }

    /// After the file changed under us (reopen, rotation): a Zeek log needs its header again.
    fn new_file(&mut self, end: Micros) -> std::io::Result<()> {
        self.drain()?;
        if self.format == ConnFormat::Zeek && self.header_done {
            zeek::write_footer(&mut self.sink, end)?;
        }
        Ok(())
    }

    /// Reopens the file (SIGHUP).
    pub fn reopen(&mut self, now: Micros) -> std::io::Result<()> {
        self.new_file(now)?;
        self.sink.reopen()?;
        if self.sink.bytes == 0 {
            self.header_done = false;
        }
        Ok(())
    }

    /// Rotates the file when it is over `limit` bytes.
    pub fn rotate_if_over(&mut self, limit: u64, now: Micros) -> std::io::Result<()> {
        if limit == 0 {
            return Ok(());
        }
        // The byte count must include the lines still collected here.
        self.drain()?;
        if self.sink.bytes >= limit && !self.sink.is_stdout() {
            self.new_file(now)?;
            if self.sink.rotate_if_over(limit)? {
                self.header_done = false;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.sink.flush()
    }
}

impl Write for ConnWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.drain()?;
        self.sink.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        ConnWriter::flush(self)
    }
}
