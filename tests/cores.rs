//! `--cores` parsing and resolution against the allowed cores.

use uring_serve::apps::BenchApp;
use uring_serve::{CoreId, Cores, CoresError, Server};

fn ids(v: &[usize]) -> Vec<CoreId> {
    v.iter().copied().map(CoreId).collect()
}

#[test]
fn all_means_every_allowed_core() {
    let cores: Cores = "all".parse().unwrap();
    assert_eq!(cores.resolve(&[1, 3, 5]).unwrap(), ids(&[1, 3, 5]));
}

#[test]
fn a_bare_number_is_a_count_of_the_first_allowed_cores() {
    let cores: Cores = "2".parse().unwrap();
    assert_eq!(cores, Cores::Count(2));
    assert_eq!(cores.resolve(&[4, 5, 6]).unwrap(), ids(&[4, 5]));
}

#[test]
fn lists_take_ranges_and_commas() {
    let cores: Cores = "0-3,8".parse().unwrap();
    assert_eq!(cores, Cores::List(vec![0, 1, 2, 3, 8]));
    assert_eq!("5-5".parse::<Cores>().unwrap(), Cores::List(vec![5]));
    assert_eq!("0,2".parse::<Cores>().unwrap(), Cores::List(vec![0, 2]));
    assert_eq!("3,1,1".parse::<Cores>().unwrap(), Cores::List(vec![1, 3]));
}

#[test]
fn zero_count_is_an_error() {
    assert_eq!("0".parse::<Cores>(), Err(CoresError::ZeroCount));
}

#[test]
fn more_than_allowed_is_an_error() {
    let err = Cores::Count(3).resolve(&[0, 1]).unwrap_err();
    assert!(matches!(err, CoresError::TooMany { asked: 3, .. }));
    assert!(err.to_string().contains("may only run on 2"));
}

#[test]
fn a_core_outside_the_allowed_set_is_an_error() {
    let err = "0-3,8".parse::<Cores>().unwrap().resolve(&[0, 1, 2, 3]).unwrap_err();
    assert_eq!(err, CoresError::NotAllowed { core: 8, allowed: vec![0, 1, 2, 3] });
}

#[test]
fn garbage_is_a_syntax_error() {
    for text in ["", "abc", "1-", "-1", "3-1", "1,,2", "1.5", "0x1", "all,1"] {
        assert!(matches!(text.parse::<Cores>(), Err(CoresError::Syntax(_))), "{text:?} accepted");
    }
}

#[test]
fn serving_on_a_core_not_allowed_fails_to_start() {
    let err = Server::builder()
        .cores(Cores::List(vec![100_000]))
        .bind("127.0.0.1:0")
        .serve(BenchApp::new)
        .unwrap_err();
    assert!(err.to_string().contains("core 100000"), "{err}");
}
