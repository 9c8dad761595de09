#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report
//! Property tests: `parse_c_int` reads numbers exactly as popt does with C's own
//! `strtol(s, &end, 0)`, which serves as the reference model here.

use amqp_common::number::{parse_c_int, NumberError};
use proptest::prelude::*;
use std::ffi::CString;

/// popt's POPT_ARG_INT on top of the C library: `strtol(s, &end, 0)`, anything left over is a
/// bad number, and a value outside `int` (or a `long` overflow) is out of range.
fn popt_reference(s: &str) -> Result<i32, NumberError> {
    let c = CString::new(s).expect("test strings hold no NUL");
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; `end` is written by
    // strtol to point into it. errno is thread-local.
    let (value, consumed, erange) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtol(c.as_ptr(), &mut end, 0);
        let erange = *libc::__errno_location() == libc::ERANGE;
        (v, end.offset_from(c.as_ptr()) as usize, erange)
    };
    if consumed != s.len() {
        return Err(NumberError::Invalid);
    }
    if erange {
        return Err(NumberError::OutOfRange);
    }
    i32::try_from(value).map_err(|_| NumberError::OutOfRange)
}

fn blanks() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(vec![' ', '\t', '\n', '\r', '\x0b', '\x0c']),
        0..3,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A number written the ways a script might: blanks, a sign, decimal / 0x hex / 0 octal, of a
/// magnitude around the int and long limits, sometimes with something after it.
fn formatted() -> impl Strategy<Value = String> {
    let magnitude = prop_oneof![
        0u128..1000,
        (i32::MAX as u128 - 2)..(i32::MAX as u128 + 3),
        (u64::MAX as u128 - 2)..(u64::MAX as u128 + 3),
        any::<u32>().prop_map(u128::from),
        any::<u64>().prop_map(u128::from),
        any::<u128>(),
    ];
    let sign = proptest::sample::select(vec!["", "+", "-"]);
    let base = 0..4u8;
    let tail = prop_oneof![
        6 => Just(String::new()),
        1 => "[ x.8g9a-]{1,2}",
    ];
    (blanks(), sign, base, magnitude, any::<bool>(), tail).prop_map(
        |(blanks, sign, base, m, upper, tail)| {
            let digits = match base {
                0 => format!("{m}"),
                1 if upper => format!("0X{m:X}"),
                1 => format!("0x{m:x}"),
                2 => format!("0{m:o}"),
                _ => format!("{m:0>3}"), // leading zeros: octal if the digits allow
            };
            format!("{blanks}{sign}{digits}{tail}")
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8192))]

    #[test]
    fn agrees_with_strtol_on_formatted_numbers(s in formatted()) {
        prop_assert_eq!(parse_c_int(&s), popt_reference(&s), "{:?}", s);
    }

    #[test]
    fn agrees_with_strtol_on_near_numbers(s in "[-+ \t0-9a-fA-FxX]{0,12}") {
        prop_assert_eq!(parse_c_int(&s), popt_reference(&s), "{:?}", s);
    }

    #[test]
    fn agrees_with_strtol_on_any_string(s in "[^\u{0}]{0,16}") {
        prop_assert_eq!(parse_c_int(&s), popt_reference(&s), "{:?}", s);
    }

    #[test]
    fn every_int_round_trips_in_every_base(v in any::<i32>()) {
        let m = v.unsigned_abs();
        let sign = if v < 0 { "-" } else { "" };
        for s in [format!("{v}"), format!("{sign}0x{m:x}"), format!("{sign}0{m:o}"), format!(" \t{v}")] {
            prop_assert_eq!(parse_c_int(&s), Ok(v), "{:?}", s);
        }
    }
}

/// Fixed points of the reference model worth keeping whatever the generators draw.
#[test]
fn reference_corner_cases() {
    for s in [
        "",
        " ",
        "0x",
        "0X",
        "-",
        "+",
        "0x-1",
        "- 1",
        "+-1",
        "00",
        "0x0",
        "-0",
        "1e3",
        "0b1",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "0x7fffffff",
        "0x80000000",
        "-0x80000000",
        "017777777777",
        "020000000000",
        "\u{a0}1",
        "\u{85}1",
        "٣",
    ] {
        assert_eq!(parse_c_int(s), popt_reference(s), "{s:?}");
    }
}
