//! The `Date` header value (RFC 9110 §6.6.1, IMF-fixdate), rendered once per
//! second per core by its owner and copied into every response head.

use std::time::SystemTime;

/// An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`, always 29 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate([u8; 29]);

impl HttpDate {
    /// Renders `time` (whole seconds) as an IMF-fixdate.
    pub fn from_system_time(time: SystemTime) -> HttpDate {
        let text = httpdate::fmt_http_date(time);
        let mut bytes = [b' '; 29];
        let n = text.len().min(29);
        bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
        HttpDate(bytes)
    }

    /// The date as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn renders_imf_fixdate() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(HttpDate::from_system_time(t).as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
