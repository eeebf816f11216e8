//! Reading a query's result: the column count, then each row as borrowed field slices of the
//! receive buffer, until the EOF or ERR packet that ends it.

use mysql_common::constants::StatusFlags;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{COM_QUERY, EOF, ERR, OK, WireConn, WireError, server_error, unexpected};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WireConn<S> {
    /// Sends a text-protocol query; its rows are read from the returned stream.
    pub async fn query(&mut self, sql: &str) -> Result<Rows<'_, S>, WireError> {
        if self.broken {
            return Err(WireError::Broken);
        }
        self.broken = true; // until the result is read to its end
        self.seq = 0;
        let mut command = Vec::with_capacity(sql.len() + 1);
        command.push(COM_QUERY);
        command.extend_from_slice(sql.as_bytes());
        self.write_packet(&command).await?;
        let caps = self.capabilities;
        let first = self.read_packet().await?;
        let columns = match first.first() {
            Some(&OK) => {
                self.broken = false;
                return Ok(Rows {
                    conn: self,
                    columns: 0,
                    done: true,
                });
            }
            Some(&ERR) => {
                let e = server_error(first, caps);
                self.broken = false;
                return Err(e);
            }
            _ => {
                let mut at = 0;
                read_lenenc(first, &mut at)
                    .filter(|_| at == first.len())
                    .ok_or_else(|| unexpected("a column count", first))?
            }
        };
        // Column definitions are not needed: the dump knows its columns.
        for _ in 0..columns {
            self.read_packet().await?;
        }
        let eof = self.read_packet().await?;
        if !is_eof(eof) {
            return Err(unexpected("the end of the column definitions", eof));
        }
        Ok(Rows {
            conn: self,
            columns: columns as usize,
            done: false,
        })
    }
}

/// A NULL field in a text-protocol row.
const NULL_FIELD: u8 = 0xFB;

/// What a packet in a row stream is.
enum RowPacket {
    Row,
    End(StatusFlags),
    Failed(WireError),
}

/// The rows of one query, read as they arrive.
pub struct Rows<'c, S> {
    conn: &'c mut WireConn<S>,
    columns: usize,
    done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Rows<'_, S> {
    /// The next row, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Row<'_>>, WireError> {
        if self.done {
            return Ok(None);
        }
        let span = self.conn.next_packet().await?;
        let packet = self.conn.payload(&span);
        let kind = if is_eof(packet) {
            RowPacket::End(eof_status(packet))
        } else if packet.first() == Some(&ERR) {
            RowPacket::Failed(server_error(packet, self.conn.capabilities))
        } else {
            RowPacket::Row
        };
        match kind {
            RowPacket::Row => Ok(Some(Row {
                packet: self.conn.payload(&span),
                columns: self.columns,
            })),
            RowPacket::End(status) => {
                self.done = true;
                if status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
                    return Err(WireError::Malformed(
                        "a second result set after a single-statement query".to_string(),
                    ));
                }
                self.conn.broken = false;
                Ok(None)
            }
            RowPacket::Failed(e) => {
                // An ERR packet ends the result: the session stays usable.
                self.done = true;
                self.conn.broken = false;
                Err(e)
            }
        }
    }
}

/// One text-protocol row: `columns` length-encoded fields.
pub struct Row<'a> {
    packet: &'a [u8],
    columns: usize,
}

impl<'a> Row<'a> {
    /// A row view over one text-protocol row packet of a result with `columns` columns.
    #[cfg(test)]
    pub(crate) fn new(packet: &'a [u8], columns: usize) -> Self {
        Row { packet, columns }
    }

    /// The row's packet as the server sent it: `columns` length-encoded fields.
    pub(crate) fn packet(&self) -> &'a [u8] {
        self.packet
    }

    /// The number of fields the row must have.
    pub(crate) fn columns(&self) -> usize {
        self.columns
    }

    /// The fields in order: `None` is SQL NULL. A field that runs past the packet, or bytes
    /// left after the last field, is an error.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            packet: self.packet,
            at: 0,
            left: self.columns,
        }
    }
}

pub struct Fields<'a> {
    packet: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Option<&'a [u8]>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.at != self.packet.len() {
                self.at = self.packet.len();
                return Some(Err(WireError::Malformed(
                    "a row has more fields than the result has columns".to_string(),
                )));
            }
            return None;
        }
        self.left -= 1;
        if self.packet.get(self.at) == Some(&NULL_FIELD) {
            self.at += 1;
            return Some(Ok(None));
        }
        let field = read_lenenc(self.packet, &mut self.at).and_then(|len| {
            let end = self.at.checked_add(usize::try_from(len).ok()?)?;
            let field = self.packet.get(self.at..end)?;
            self.at = end;
            Some(field)
        });
        match field {
            Some(f) => Some(Ok(Some(f))),
            None => {
                self.left = 0;
                self.at = self.packet.len();
                Some(Err(WireError::Malformed(
                    "a row field runs past the end of its packet".to_string(),
                )))
            }
        }
    }
}

/// Reads a length-encoded integer at `*at`.
fn read_lenenc(p: &[u8], at: &mut usize) -> Option<u64> {
    let first = *p.get(*at)?;
    let width = match first {
        0..=0xFA => {
            *at += 1;
            return Some(u64::from(first));
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let bytes = p.get(*at + 1..*at + 1 + width)?;
    *at += 1 + width;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// Whether `packet` ends a result set (an EOF packet: header 0xFE, shorter than 9 bytes; a row
/// starting with 0xFE has an 8-byte length after it).
fn is_eof(packet: &[u8]) -> bool {
    packet.first() == Some(&EOF) && packet.len() < 9
}

/// The status flags of an EOF packet (0xFE, warnings u16, status u16).
fn eof_status(packet: &[u8]) -> StatusFlags {
    let bits = match packet {
        [_, _, _, lo, hi, ..] => u16::from_le_bytes([*lo, *hi]),
        _ => 0,
    };
    StatusFlags::from_bits_truncate(bits)
}

#[cfg(test)]
fn lenenc(out: &mut Vec<u8>, field: Option<&[u8]>) {
    let Some(f) = field else {
        out.push(NULL_FIELD);
        return;
    };
    match f.len() {
        n @ 0..=250 => out.push(n as u8),
        n @ 251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        n @ 0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        n => {
            out.push(0xFE);
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
    out.extend_from_slice(f);
}

/// A text-protocol row packet of `fields` (`None` is NULL), for the tests of what reads rows.
#[cfg(test)]
pub(crate) fn row_packet(fields: &[Option<&[u8]>]) -> Vec<u8> {
    let mut p = Vec::new();
    for f in fields {
        lenenc(&mut p, *f);
    }
    p
}
