use super::*;
use std::io::Write;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mailcanary-follow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// Polls until nothing more comes (a rotation takes two polls: the old
/// file's end, then the new file).
fn drain(tail: &mut Tail) -> Vec<String> {
    let mut all = Vec::new();
    for _ in 0..4 {
        all.extend(tail.poll().unwrap());
    }
    all
}

#[test]
fn whole_lines_only_and_from_the_end_when_asked() {
    let d = dir("lines");
    let log = d.join("mail.log");
    append(&log, "old 1\nold 2\n");
    let mut from_start = Tail::new(&log, None, StartAt::Beginning);
    let mut from_end = Tail::new(&log, None, StartAt::End);
    append(&log, "new 1\nnew 2 is hal");
    assert_eq!(drain(&mut from_start), ["old 1", "old 2", "new 1"]);
    assert_eq!(drain(&mut from_end), ["new 1"]);
    append(&log, "f done\n");
    assert_eq!(drain(&mut from_end), ["new 2 is half done"]);
    assert_eq!(from_end.position().unwrap().offset, std::fs::metadata(&log).unwrap().len());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_rotation_is_followed_after_the_old_file_is_read_to_its_end() {
    let d = dir("rotate");
    let log = d.join("mail.log");
    append(&log, "a\n");
    let mut tail = Tail::new(&log, None, StartAt::Beginning);
    assert_eq!(drain(&mut tail), ["a"]);
    append(&log, "b\nc");
    std::fs::rename(&log, d.join("mail.log.1")).unwrap();
    append(&log, "d\n");
    assert_eq!(drain(&mut tail), ["b", "c", "d"], "the old file's last line, then the new file");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_truncated_file_is_read_again_from_its_start() {
    let d = dir("truncate");
    let log = d.join("mail.log");
    append(&log, "first line, long enough\nsecond\n");
    let mut tail = Tail::new(&log, None, StartAt::Beginning);
    assert_eq!(drain(&mut tail).len(), 2);
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, "after\n");
    assert_eq!(drain(&mut tail), ["after"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_saved_position_resumes_exactly_even_across_a_rotation_while_stopped() {
    let d = dir("resume");
    let log = d.join("mail.log");
    append(&log, "1\n2\n");
    let mut tail = Tail::new(&log, None, StartAt::Beginning);
    assert_eq!(drain(&mut tail), ["1", "2"]);
    let saved = tail.position().unwrap();
    append(&log, "3\n");
    assert_eq!(drain(&mut Tail::new(&log, Some(saved), StartAt::End)), ["3"], "neither skipped nor repeated");
    std::fs::rename(&log, d.join("mail.log.1")).unwrap();
    append(&log, "4\n");
    assert_eq!(drain(&mut Tail::new(&log, Some(saved), StartAt::End)), ["3", "4"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_file_that_is_not_there_yet_is_followed_once_it_is() {
    let d = dir("later");
    let log = d.join("mail.log");
    let mut tail = Tail::new(&log, None, StartAt::End);
    assert!(drain(&mut tail).is_empty());
    append(&log, "x\n");
    assert_eq!(drain(&mut tail), ["x"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn on_a_restart_the_lines_before_the_saved_position_can_be_read_again_without_moving_on() {
    let d = dir("before");
    let log = d.join("mail.log");
    append(&log, "one\ntwo\nthree\n");
    let mut first = Tail::new(&log, None, StartAt::Beginning);
    assert_eq!(drain(&mut first), ["one", "two", "three"]);
    let saved = first.position();
    append(&log, "four\n");
    let mut again = Tail::new(&log, saved, StartAt::End);
    assert_eq!(again.before(1024), ["one", "two", "three"]);
    assert_eq!(again.before(9), ["three"], "a line cut by the limit is left out");
    assert_eq!(drain(&mut again), ["four"], "and it reads on from where it stood");
    std::fs::remove_dir_all(&d).unwrap();
}
