//! Side-by-side throughput in one run: the AES ceiling, every envol
//! backend, OpenSSL 4.0 (vendored) and the xts-mode crate, for both key
//! sizes, both directions, 512 B and 4 KiB sectors. Prints markdown.
//!
//!     cargo run --release -p envol-bench --bin compare [-- --quick]
//!     cargo run --release -p envol-bench --bin compare -- --chart docs/throughput.svg
//!
//! `--chart FILE` instead sweeps XTS-AES-256 encryption over sector sizes
//! 512 B .. 64 KiB for every implementation and draws the result as SVG.
//!
//! Every figure is the best of several samples taken in rotation, so slow
//! phases of a noisy machine hit every implementation alike; read the ratios.
#![allow(missing_docs, clippy::cast_possible_truncation)]

use std::time::Instant;

use envol::xts::{Backend, Xts};
use envol_bench::{Impl, XtsMode, ceiling, envol_backends};

const RUN: usize = 64 * 1024;

struct Cfg {
    rounds: usize,
    min_ns: u128,
}

fn sample(min_ns: u128, f: &mut dyn FnMut()) -> f64 {
    let mut iters = 0u64;
    let t = Instant::now();
    loop {
        f();
        iters += 1;
        let e = t.elapsed().as_nanos();
        if e >= min_ns {
            return e as f64 / iters as f64;
        }
    }
}

/// Measures each closure in rotation; returns GB/s per closure.
fn rotate(cfg: &Cfg, bytes: &[usize], fs: &mut [Box<dyn FnMut() + '_>]) -> Vec<f64> {
    for f in fs.iter_mut() {
        f();
    }
    let mut best = vec![f64::MAX; fs.len()];
    for _ in 0..cfg.rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            best[i] = best[i].min(sample(cfg.min_ns, f.as_mut()));
        }
    }
    best.iter()
        .zip(bytes)
        .map(|(ns, b)| *b as f64 / ns)
        .collect()
}

fn key_for(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(7))
        .collect()
}

/// The CPU's name, and on x86 its family, model and stepping and the
/// vector features that matter here: virtual machines often report a
/// generic name ("Intel(R) Xeon(R) Processor"), and the features tell the
/// core generation apart.
fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return std::env::consts::ARCH.to_string();
    };
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let Some(name) = field("model name") else {
        return std::env::consts::ARCH.to_string();
    };
    let (Some(family), Some(model), Some(stepping)) =
        (field("cpu family"), field("model"), field("stepping"))
    else {
        return name;
    };
    let model = model.parse::<u32>().map_or(model, |m| format!("{m:#04x}"));
    let flags = field("flags").unwrap_or_default();
    let notable: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            [
                "avx2",
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512_fp16",
                "amx_tile",
                "vaes",
                "vpclmulqdq",
                "hypervisor",
            ]
            .contains(f)
        })
        .collect();
    format!(
        "{name} (family {family}, model {model}, stepping {stepping}; {})",
        notable.join(" ")
    )
}

/// Child mode: envol's `aesni` against OpenSSL with AVX and VAES masked
/// off by `OPENSSL_ia32cap`, side by side in this process.
#[cfg(feature = "openssl")]
fn child_aesni(cfg: &Cfg) {
    for klen in [32usize, 64] {
        let key = key_for(klen);
        for sector in [512usize, 4096] {
            for enc in [true, false] {
                let mut a = envol_bench::Envol(Xts::with_backend(&key, Backend::Aesni).unwrap());
                let mut o = envol_bench::ossl::OpenSsl::new(&key, "openssl");
                let mut b1 = vec![0u8; RUN];
                let mut b2 = vec![0u8; RUN];
                let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
                    Box::new(|| {
                        if enc {
                            a.encrypt(0, sector, &mut b1)
                        } else {
                            a.decrypt(0, sector, &mut b1)
                        }
                    }),
                    Box::new(|| {
                        if enc {
                            o.encrypt(0, sector, &mut b2)
                        } else {
                            o.decrypt(0, sector, &mut b2)
                        }
                    }),
                ];
                let r = rotate(cfg, &[RUN, RUN], &mut fs);
                println!("CHILD {klen} {enc} {sector} {} {}", r[0], r[1]);
            }
        }
    }
}

fn main() {
    // Detection cost: the first probe of this process, before anything else.
    let t = Instant::now();
    let detected = Backend::detect();
    let detect_ns = t.elapsed().as_nanos();

    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let cfg = if quick {
        Cfg {
            rounds: 3,
            min_ns: 20_000_000,
        }
    } else {
        Cfg {
            rounds: 7,
            min_ns: 60_000_000,
        }
    };
    #[cfg(feature = "openssl")]
    if args.iter().any(|a| a == "--child-aesni") {
        child_aesni(&cfg);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--chart") {
        let path = args.get(i + 1).map_or("throughput.svg", String::as_str);
        chart(&cfg, path);
        return;
    }

    println!("## envol `compare`\n");
    println!("- CPU: {}", cpu_model());
    println!("- detected backend: `{detected}`; first detection took {detect_ns} ns");
    #[cfg(feature = "openssl")]
    println!("- OpenSSL: {}", envol_bench::ossl::version());
    println!(
        "- command: `cargo run --release -p envol-bench --bin compare{}`",
        if quick { " -- --quick" } else { "" }
    );
    println!(
        "- buffers: {} KiB runs of sectors (L2-resident); best of {} samples of >= {} ms each, in rotation\n",
        RUN / 1024,
        cfg.rounds,
        cfg.min_ns / 1_000_000
    );

    // Key setup cost.
    for klen in [32usize, 64] {
        let key = key_for(klen);
        for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let n = 20_000;
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(Xts::with_backend(std::hint::black_box(&key), b).unwrap());
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            println!("- key setup, XTS-AES-{} on `{b}`: {ns:.0} ns", klen * 4);
        }
    }
    println!();

    let (ceil_name, ceil_fn) = ceiling::widest();
    println!(
        "Ceiling: `{ceil_name}`, 8 registers of independent AES rounds over a 16 KiB buffer.\n"
    );
    println!("| key | op | sector | implementation | GB/s | vs OpenSSL | of ceiling |");
    println!("| --- | --- | ---: | --- | ---: | ---: | ---: |");

    for klen in [32usize, 64] {
        let key = key_for(klen);
        let rounds = if klen == 32 { 10 } else { 14 };
        for enc in [true, false] {
            for sector in [512usize, 4096] {
                let mut impls: Vec<Box<dyn Impl>> = Vec::new();
                for e in envol_backends(&key) {
                    impls.push(Box::new(e));
                }
                #[cfg(feature = "openssl")]
                impls.push(Box::new(envol_bench::ossl::OpenSsl::new(&key, "openssl")));
                impls.push(Box::new(XtsMode::new(&key)));
                let names: Vec<String> = impls.iter().map(|i| i.name()).collect();

                let mut bufs: Vec<Vec<u8>> = impls.iter().map(|_| vec![0u8; RUN]).collect();
                let mut ceil_buf = vec![0u8; 16 * 1024];
                #[cfg(feature = "openssl")]
                let mut big = envol_bench::ossl::OpenSsl::new(&key, "openssl-1MiB-units");
                #[cfg(feature = "openssl")]
                let mut big_buf = vec![0u8; 1 << 20];

                let mut fs: Vec<Box<dyn FnMut() + '_>> = Vec::new();
                let mut sizes = Vec::new();
                fs.push(Box::new(|| ceil_fn(&mut ceil_buf, rounds)));
                sizes.push(16 * 1024);
                for (imp, buf) in impls.iter_mut().zip(bufs.iter_mut()) {
                    fs.push(Box::new(move || {
                        if enc {
                            imp.encrypt(0, sector, buf)
                        } else {
                            imp.decrypt(0, sector, buf)
                        }
                    }));
                    sizes.push(RUN);
                }
                #[cfg(feature = "openssl")]
                if sector == 4096 {
                    fs.push(Box::new(|| {
                        if enc {
                            big.encrypt(0, 1 << 20, &mut big_buf)
                        } else {
                            big.decrypt(0, 1 << 20, &mut big_buf)
                        }
                    }));
                    sizes.push(1 << 20);
                }
                let r = rotate(&cfg, &sizes, &mut fs);
                let ceil = r[0];
                let ossl = names.iter().position(|n| n == "openssl").map(|i| r[i + 1]);
                let mut rows: Vec<(String, f64)> =
                    names.iter().cloned().zip(r[1..].iter().copied()).collect();
                if r.len() > names.len() + 1 {
                    rows.push(("openssl, 1 MiB units".into(), r[names.len() + 1]));
                }
                let kname = if klen == 32 {
                    "XTS-AES-128"
                } else {
                    "XTS-AES-256"
                };
                let op = if enc { "encrypt" } else { "decrypt" };
                println!(
                    "| {kname} | {op} | {sector} | ceiling ({ceil_name}) | {ceil:.2} | | 1.00 |"
                );
                for (n, g) in rows {
                    let vs = ossl.map(|o| format!("{:.2}", g / o)).unwrap_or_default();
                    println!(
                        "| {kname} | {op} | {sector} | {n} | {g:.2} | {vs} | {:.2} |",
                        g / ceil
                    );
                }
            }
        }
    }

    #[cfg(feature = "openssl")]
    if Backend::Aesni.is_available() {
        // OpenSSL restricted to its SSE AES-NI path: mask AVX (CPUID.1:ECX
        // bit 28) and AVX2, AVX-512F/BW/VL, VAES, VPCLMULQDQ (CPUID.7).
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--child-aesni")
            .args(if quick { vec!["--quick"] } else { vec![] })
            .env("OPENSSL_ia32cap", "~0x1000000000000000:~0x6000c0010020")
            .output()
            .unwrap();
        println!(
            "\nOpenSSL restricted to AES-NI (`OPENSSL_ia32cap=~0x1000000000000000:~0x6000c0010020`), against envol `aesni`, side by side in one process:\n"
        );
        println!("| key | op | sector | envol aesni GB/s | OpenSSL AES-NI GB/s | ratio |");
        println!("| --- | --- | ---: | ---: | ---: | ---: |");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 6 && f[0] == "CHILD" {
                let e: f64 = f[4].parse().unwrap_or(0.0);
                let o: f64 = f[5].parse().unwrap_or(1.0);
                let k = if f[1] == "32" {
                    "XTS-AES-128"
                } else {
                    "XTS-AES-256"
                };
                let op = if f[2] == "true" { "encrypt" } else { "decrypt" };
                println!("| {k} | {op} | {} | {e:.2} | {o:.2} | {:.2} |", f[3], e / o);
            }
        }
    }

    // Thread scaling on runs of 4 KiB sectors: the scoped helper (threads
    // spawned per call) and the pool (workers kept between calls), each
    // against one thread, side by side.
    {
        let key = key_for(64);
        let xts = Xts::new(&key).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = envol::xts::XtsPool::new(cores).unwrap();
        println!(
            "\nThreads: XTS-AES-256 encrypt, runs of 4 KiB sectors on `{}`, {cores} threads against one:\n",
            xts.backend()
        );
        println!("| run | 1 thread GB/s | scoped GB/s | scaling | pool GB/s | scaling |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
        for len in [256usize << 10, 1 << 20, 4 << 20, 16 << 20] {
            let mut b1 = vec![0u8; len];
            let mut b2 = vec![0u8; len];
            let mut b3 = vec![0u8; len];
            // Below `MIN_BYTES_PER_THREAD` per thread the scoped helper does
            // not split; force it here to show why.
            let scoped_threads = cores;
            let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
                Box::new(|| xts.encrypt_sectors(0, 4096, &mut b1).unwrap()),
                Box::new(|| {
                    scoped_forced(&xts, &mut b2, scoped_threads);
                }),
                Box::new(|| pool.encrypt_sectors(&xts, 0, 4096, &mut b3).unwrap()),
            ];
            let r = rotate(&cfg, &[len, len, len], &mut fs);
            let size = if len >= 1 << 20 {
                format!("{} MiB", len >> 20)
            } else {
                format!("{} KiB", len >> 10)
            };
            println!(
                "| {size} | {:.2} | {:.2} | {:.2}x | {:.2} | {:.2}x |",
                r[0],
                r[1],
                r[1] / r[0],
                r[2],
                r[2] / r[0]
            );
        }
        println!();
    }
}

/// Scoped threads spawned for this call, one share each, whatever the size
/// (what `Xts::encrypt_sectors_parallel` does above its threshold).
fn scoped_forced(xts: &Xts, buf: &mut [u8], threads: usize) {
    let per = (buf.len() / 4096).div_ceil(threads) * 4096;
    std::thread::scope(|s| {
        let mut parts = buf.chunks_mut(per).enumerate();
        let mine = parts.next();
        for (i, part) in parts {
            s.spawn(move || {
                xts.encrypt_sectors((i * per / 4096) as u64, 4096, part)
                    .unwrap()
            });
        }
        if let Some((_, part)) = mine {
            xts.encrypt_sectors(0, 4096, part).unwrap();
        }
    });
}

/// Sector sizes of the chart.
const CHART_SECTORS: [usize; 8] = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

/// XTS-AES-256 encryption of 64 KiB runs by sector size, every
/// implementation side by side in one run; printed and drawn into `path`.
fn chart(cfg: &Cfg, path: &str) {
    let key = key_for(64);
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    for &sector in &CHART_SECTORS {
        let mut impls: Vec<Box<dyn Impl>> = Vec::new();
        for e in envol_backends(&key) {
            impls.push(Box::new(e));
        }
        #[cfg(feature = "openssl")]
        impls.push(Box::new(envol_bench::ossl::OpenSsl::new(&key, "openssl")));
        impls.push(Box::new(XtsMode::new(&key)));
        let names: Vec<String> = impls.iter().map(|i| i.name()).collect();
        let mut bufs: Vec<Vec<u8>> = impls.iter().map(|_| vec![0u8; RUN]).collect();
        let mut fs: Vec<Box<dyn FnMut() + '_>> = Vec::new();
        for (imp, buf) in impls.iter_mut().zip(bufs.iter_mut()) {
            fs.push(Box::new(move || imp.encrypt(0, sector, buf)));
        }
        let r = rotate(cfg, &vec![RUN; names.len()], &mut fs);
        for (n, g) in names.into_iter().zip(r) {
            match series.iter_mut().find(|(s, _)| *s == n) {
                Some((_, v)) => v.push(g),
                None => series.push((n, vec![g])),
            }
        }
    }
    println!(
        "XTS-AES-256 encrypt, 64 KiB runs, GB/s by sector size ({})\n",
        cpu_model()
    );
    print!("| implementation |");
    for s in CHART_SECTORS {
        print!(" {s} |");
    }
    println!();
    println!("| --- |{}", " ---: |".repeat(CHART_SECTORS.len()));
    for (n, v) in &series {
        print!("| {n} |");
        for g in v {
            print!(" {g:.2} |");
        }
        println!();
    }
    std::fs::write(path, svg(&series)).expect("write chart");
    println!("\nchart written to {path}");
}

/// A line chart: x = sector size (log scale), y = GB/s.
fn svg(series: &[(String, Vec<f64>)]) -> String {
    use std::fmt::Write as _;
    let (w, h, left, right, top, bottom) = (760.0, 420.0, 60.0, 190.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let ymax = (ymax / 2.0).ceil() * 2.0;
    let n = CHART_SECTORS.len() as f64 - 1.0;
    let x = |i: usize| left + pw * i as f64 / n;
    let y = |g: f64| top + ph * (1.0 - g / ymax);
    let colors = [
        "#1b6ac9", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#495057", "#e67700",
    ];
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">XTS-AES-256 encrypt, 64 KiB runs: GB/s by sector size (one run, one core)</text>\n"
    );
    let mut g = 0.0;
    while g <= ymax + 1e-9 {
        let yy = y(g);
        let _ = writeln!(
            o,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{g}</text>",
            left + pw,
            left - 6.0,
            yy + 4.0
        );
        g += 2.0;
    }
    for (i, s) in CHART_SECTORS.iter().enumerate() {
        let label = if *s >= 1024 {
            format!("{}K", s / 1024)
        } else {
            s.to_string()
        };
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(i),
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">sector size (bytes)</text>\
         <text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">GB/s</text>",
        left + pw / 2.0,
        h - 10.0,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (k, (name, v)) in series.iter().enumerate() {
        let c = colors[k % colors.len()];
        let pts: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{:.1},{:.1}", x(i), y(*g)))
            .collect();
        let _ = writeln!(
            o,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(o, "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{c}\"/>");
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            o,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{c}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            left + pw + 15.0,
            left + pw + 40.0,
            left + pw + 46.0,
            ly + 4.0
        );
    }
    o.push_str("</svg>\n");
    o
}
