//! Integer option values, parsed the way the C tools' option parser (popt) reads them, so that
//! scripts passing `0x10`, `010`, `+5`, ` 7` or an empty string keep getting the same numbers.

/// Why a value was refused; the caller names the option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number at all, or trailing characters after it.
    Invalid,
    /// Outside the range of a C `int`.
    OutOfRange,
}

impl std::fmt::Display for NumberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NumberError::Invalid => f.write_str("not a whole number"),
            NumberError::OutOfRange => f.write_str("number too large or too small"),
        }
    }
}

impl std::error::Error for NumberError {}

/// Parses like `strtol(s, &end, 0)` with the checks popt adds: leading blanks and a sign are
/// accepted, `0x` means hexadecimal and a leading `0` octal, the empty string is 0, anything
/// left over is an error, and the result must fit a C `int`.
pub fn parse_c_int(s: &str) -> Result<i32, NumberError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    // isspace() in the C locale.
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut negative = false;
    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
        negative = bytes[i] == b'-';
        i += 1;
    }
    let (radix, digits_start) = if bytes.len() > i + 1
        && bytes[i] == b'0'
        && (bytes[i + 1] == b'x' || bytes[i + 1] == b'X')
        && bytes.get(i + 2).is_some_and(|b| b.is_ascii_hexdigit())
    {
        (16, i + 2)
    } else if i < bytes.len() && bytes[i] == b'0' {
        (8, i)
    } else {
        (10, i)
    };
    let mut end = digits_start;
    let mut value: i128 = 0;
    let mut overflow = false;
    while end < bytes.len() {
        let Some(d) = (bytes[end] as char).to_digit(radix) else {
            break;
        };
        value = value * i128::from(radix) + i128::from(d);
        if value > i128::from(u64::MAX) {
            overflow = true;
            value = i128::from(u64::MAX);
        }
        end += 1;
    }
    if end == digits_start {
        // No digits: strtol consumes nothing, so the whole string is "left over" unless it was
        // empty. popt treats an empty value as 0 ("--port=").
        return if s.is_empty() {
            Ok(0)
        } else {
            Err(NumberError::Invalid)
        };
    }
    if end != bytes.len() {
        return Err(NumberError::Invalid);
    }
    let value = if negative { -value } else { value };
    if overflow || value > i128::from(i32::MAX) || value < i128::from(i32::MIN) {
        return Err(NumberError::OutOfRange);
    }
    Ok(value as i32)
}

/// A clap value parser for integer options.
pub fn c_int(s: &str) -> Result<i32, NumberError> {
    parse_c_int(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popt_number_rules() {
        assert_eq!(parse_c_int("5672"), Ok(5672));
        assert_eq!(parse_c_int("0x10"), Ok(16));
        assert_eq!(parse_c_int("0X1f"), Ok(31));
        assert_eq!(parse_c_int("010"), Ok(8));
        assert_eq!(parse_c_int("0"), Ok(0));
        assert_eq!(parse_c_int(""), Ok(0));
        assert_eq!(parse_c_int("+7"), Ok(7));
        assert_eq!(parse_c_int("  7"), Ok(7));
        assert_eq!(parse_c_int("-5"), Ok(-5));
        assert_eq!(parse_c_int("-0x10"), Ok(-16));
        assert_eq!(parse_c_int("2147483647"), Ok(i32::MAX));
        assert_eq!(parse_c_int("-2147483648"), Ok(i32::MIN));
    }

    #[test]
    fn popt_number_errors() {
        assert_eq!(parse_c_int("abc"), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("12abc"), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("1.5"), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("5x"), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("08"), Err(NumberError::Invalid));
        assert_eq!(parse_c_int(" "), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("-"), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("7 "), Err(NumberError::Invalid));
        assert_eq!(parse_c_int("99999999999"), Err(NumberError::OutOfRange));
        assert_eq!(parse_c_int("2147483648"), Err(NumberError::OutOfRange));
        assert_eq!(
            parse_c_int("999999999999999999999999999999"),
            Err(NumberError::OutOfRange)
        );
    }
}
