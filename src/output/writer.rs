//! The output thread's side: a buffered writer for connection records in the chosen format.

use std::io::{BufWriter, Write};

use std::sync::Arc;

use super::{ConnFormat, json, zeek};
use crate::classify::ports::PortDb;
use crate::flow::ConnRecord;
use crate::time::Micros;

/// Writes connection records to one destination.
pub struct ConnWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    format: ConnFormat,
    line: String,
    header_done: bool,
    db: Arc<PortDb>,
    pub written: u64,
}

impl ConnWriter {
    pub fn new(dest: Box<dyn Write + Send>, format: ConnFormat, db: Arc<PortDb>) -> Self {
        ConnWriter {
            out: BufWriter::with_capacity(1 << 16, dest),
            format,
            line: String::new(),
            header_done: false,
            db,
            written: 0,
        }
    }

    pub fn write(&mut self, r: &ConnRecord) -> std::io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            if self.format == ConnFormat::Zeek {
                zeek::write_header(&mut self.out, r.start)?;
            }
        }
        match self.format {
            ConnFormat::Json => json::write_flow(&mut self.out, r, &self.db)?,
            ConnFormat::Zeek => zeek::write_row(&mut self.out, r, &mut self.line, &self.db)?,
        }
        self.written += 1;
        Ok(())
    }

    /// Writes the trailer (Zeek's `#close`) and flushes.
    pub fn finish(&mut self, end: Micros) -> std::io::Result<()> {
        if self.format == ConnFormat::Zeek {
            if !self.header_done {
                zeek::write_header(&mut self.out, end)?;
                self.header_done = true;
            }
            zeek::write_footer(&mut self.out, end)?;
        }
        self.out.flush()
    }

    /// The destination, for alerts that share it (both to standard output).
    pub fn sink(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
