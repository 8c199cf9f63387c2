//! The MNIST downloader against local HTTP servers on loopback that serve the real files
//! from `MNIST_DIR`, a corrupted copy, or a connection dropped halfway.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wgsl_nn::Error;
use wgsl_nn::data::download::{DownloadOptions, download_mnist};
use wgsl_nn::data::mnist::{FILES, Mnist, resolve_data_dir};

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Good,
    /// Serves the file with one byte of the compressed stream flipped.
    Corrupt,
    /// Announces the full length, sends half, and closes the connection.
    Drop,
}

/// Serves `files` (name → bytes) at http://127.0.0.1:PORT/NAME until the test ends, for a
/// bounded number of connections. Returns the base URL.
fn serve(files: Arc<HashMap<String, Vec<u8>>>, behaviour: Behaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header == "\r\n" || header.is_empty() {
                    break;
                }
            }
            let name = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            let Some(body) = files.get(name) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let mut body = body.clone();
            if behaviour == Behaviour::Corrupt {
                let middle = body.len() / 2;
                body[middle] ^= 0xff;
            }
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(header.as_bytes());
            let sent = if behaviour == Behaviour::Drop {
                &body[..body.len() / 2]
            } else {
                &body[..]
            };
            let _ = stream.write_all(sent);
        }
    });
    base
}

/// The official archives of the real MNIST (`MNIST_DIR`), whatever else its directory holds.
fn official_gz() -> Arc<HashMap<String, Vec<u8>>> {
    archives_of(&resolve_data_dir(None).0)
}

fn archives_of(dir: &Path) -> Arc<HashMap<String, Vec<u8>>> {
    Arc::new(common::official_archives(dir).into_iter().collect())
}

fn options(mirrors: Vec<String>) -> DownloadOptions {
    DownloadOptions {
        mirrors,
        attempts: 2,
        timeout: Duration::from_secs(30),
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !FILES
                .iter()
                .any(|f| n == f.name || *n == format!("{}.gz", f.name))
        })
        .collect()
}

#[test]
fn downloads_all_files_with_progress_and_they_load() {
    let base = serve(official_gz(), Behaviour::Good);
    let dir = tempfile::tempdir().unwrap();
    let mut reports = 0usize;
    download_mnist(dir.path(), &options(vec![base]), &mut |_, done, total| {
        reports += 1;
        assert!(total.is_none_or(|t| done <= t));
    })
    .unwrap();
    assert!(reports >= 4);
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );
    assert_eq!(Mnist::load(dir.path()).unwrap().train_len(), 60_000);
}

#[test]
fn a_corrupt_or_dropped_mirror_falls_back_to_the_next() {
    let files = official_gz();
    let corrupt = serve(files.clone(), Behaviour::Corrupt);
    let dropped = serve(files.clone(), Behaviour::Drop);
    let good = serve(files, Behaviour::Good);
    let dir = tempfile::tempdir().unwrap();
    download_mnist(
        dir.path(),
        &options(vec![corrupt, dropped, good]),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );
    Mnist::load(dir.path()).unwrap();
}

#[test]
fn when_every_mirror_fails_nothing_is_left_half_written() {
    let files = official_gz();
    let dir = tempfile::tempdir().unwrap();
    for behaviour in [Behaviour::Corrupt, Behaviour::Drop] {
        let base = serve(files.clone(), behaviour);
        let error =
            download_mnist(dir.path(), &options(vec![base]), &mut |_, _, _| {}).unwrap_err();
        let Error::Data { problem, .. } = &error else {
            panic!("expected a data error, got {error:?}")
        };
        assert!(
            problem.contains("could not download") && problem.contains("by hand"),
            "{problem}"
        );
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(entries.is_empty(), "a failed download left files behind");
    }
}

/// The quick start in its order: the `mnist` example (here its loader) runs first on a
/// writable data directory and decompresses the archives beside them; the downloads served
/// from that directory must still be the archives, not the raw copies. And a directory that
/// holds only raw files (decompressed by hand) serves too.
#[test]
fn the_archives_are_served_after_a_load_decompressed_them_and_when_only_raw_files_remain() {
    let data = common::archives_copy();
    Mnist::load(data.path()).unwrap();
    assert!(
        FILES.iter().all(|f| data.path().join(f.name).is_file()),
        "the load should have left raw copies beside the archives"
    );
    let check = |data: &Path| {
        let base = serve(archives_of(data), Behaviour::Good);
        let dir = tempfile::tempdir().unwrap();
        download_mnist(dir.path(), &options(vec![base]), &mut |_, _, _| {}).unwrap();
        assert_eq!(Mnist::load(dir.path()).unwrap().test_labels[0], 7);
    };
    check(data.path());
    for file in &FILES {
        std::fs::remove_file(data.path().join(format!("{}.gz", file.name))).unwrap();
    }
    check(data.path());
}

#[test]
fn an_unreachable_mirror_is_an_error_not_a_hang() {
    // A port that was just free: the connection is refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let error = download_mnist(
        dir.path(),
        &options(vec![format!("http://127.0.0.1:{port}/")]),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
}
