// Shared by kms/tests/kmip.rs and ffi/src/tests.rs (`include!`d): PyKMIP's
// server (`pykmip-server`) on 127.0.0.1 with certificates made here by the
// `openssl` command — a CA, the server's (ECDSA P-256: PyKMIP offers only
// CBC suites with RSA, which rustls does not speak), two client identities
// and a client certificate from another CA. See
// docs/notes/kmip-feasibility.md for why each setting is what it is.

#[allow(dead_code)]
mod pykmip {
    use std::io::Read as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// The server executable: `ENVOL_PYKMIP_SERVER`, else `pykmip-server`
    /// on `PATH`.
    pub fn server_exe() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("ENVOL_PYKMIP_SERVER").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("pykmip-server"))
            .find(|p| p.is_file())
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(dir: &Path, name: &str) {
        openssl(
            dir,
            &[
                "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", &format!("{name}.key"),
                "-out", &format!("{name}.crt"), "-days", "7", "-subj",
                &format!("/CN={name}"), "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    fn leaf(dir: &Path, name: &str, cn: &str, eku: &str, ca: &str, extra: &str) {
        openssl(
            dir,
            &[
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"),
                "-subj", &format!("/CN={cn}"),
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage={eku}\n{extra}\n"
            ),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509", "-req", "-in", &format!("{name}.csr"), "-CA", &format!("{ca}.crt"),
                "-CAkey", &format!("{ca}.key"), "-CAcreateserial", "-out",
                &format!("{name}.crt"), "-days", "7", "-extfile", &format!("{name}.ext"),
            ],
        );
    }

    /// Makes the test PKI in `dir` (once): `ca`, `server` (127.0.0.1),
    /// clients `client` (CN hypervisor) and `client2` (CN other-host), and
    /// `rogue` (CN hypervisor, signed by `rogue-ca`, which the server does
    /// not trust).
    pub fn make_pki(dir: &Path) {
        if dir.join("rogue.crt").is_file() {
            return;
        }
        std::fs::create_dir_all(dir).unwrap();
        ca(dir, "ca");
        ca(dir, "rogue-ca");
        leaf(dir, "server", "127.0.0.1", "serverAuth", "ca", "subjectAltName=IP:127.0.0.1");
        leaf(dir, "client", "hypervisor", "clientAuth", "ca", "");
        leaf(dir, "client2", "other-host", "clientAuth", "ca", "");
        leaf(dir, "rogue", "hypervisor", "clientAuth", "rogue-ca", "");
    }

    /// A running PyKMIP server; killed (its whole process group) on drop.
    pub struct Server {
        pub dir: PathBuf,
        pub port: u16,
        child: Option<Child>,
        starts: u32,
    }

    impl Server {
        /// Starts a server with its own PKI, database and log under `dir`
        /// (created; emptied first) on a free port of 127.0.0.1, and waits
        /// until it accepts connections.
        pub fn start(dir: &Path) -> Server {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir.join("policies")).unwrap();
            make_pki(&dir.join("pki"));
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let pki = dir.join("pki");
            let p = |f: &str| pki.join(f).display().to_string();
            std::fs::write(
                dir.join("server.conf"),
                format!(
                    "[server]\nhostname=127.0.0.1\nport={port}\ncertificate_path={}\n\
                     key_path={}\nca_path={}\nauth_suite=TLS1.2\npolicy_path={}\n\
                     enable_tls_client_auth=True\ntls_cipher_suites=\n    \
                     TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n    \
                     TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nlogging_level=INFO\n\
                     database_path={}\n",
                    p("server.crt"),
                    p("server.key"),
                    p("ca.crt"),
                    dir.join("policies").display(),
                    dir.join("pykmip.db").display(),
                ),
            )
            .unwrap();
            let mut s = Server {
                dir: dir.to_path_buf(),
                port,
                child: None,
                starts: 0,
            };
            s.run();
            s
        }

        /// `(ca, certificate, key)` paths for client `name` (`client`,
        /// `client2`, `rogue`).
        pub fn client(&self, name: &str) -> (PathBuf, PathBuf, PathBuf) {
            let pki = self.dir.join("pki");
            (
                pki.join("ca.crt"),
                pki.join(format!("{name}.crt")),
                pki.join(format!("{name}.key")),
            )
        }

        pub fn address(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }

        fn log(&self) -> PathBuf {
            self.dir.join(format!("server-{}.log", self.starts))
        }

        fn run(&mut self) {
            use std::os::unix::process::CommandExt as _;
            self.starts += 1;
            let exe = server_exe().expect(
                "pykmip-server not found: set ENVOL_PYKMIP_SERVER or put it on PATH \
                 (pip install pykmip==0.11.0)",
            );
            let log = self.log();
            let child = Command::new(&exe)
                .arg("-f")
                .arg(self.dir.join("server.conf"))
                .arg("-l")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let mut text = String::new();
                if let Ok(mut f) = std::fs::File::open(&log) {
                    let _ = f.read_to_string(&mut text);
                }
                if text.contains("Starting connection service") {
                    return;
                }
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                assert!(
                    exited.is_none() && !text.contains("failed to bind") && Instant::now() < deadline,
                    "pykmip-server did not start (exit {exited:?}); its log:\n{text}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Kills the server (every process of its group) and waits for it.
        pub fn stop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", c.id())])
                    .status();
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        /// Stops and starts the server on the same port and database.
        pub fn restart(&mut self) {
            self.stop();
            self.run();
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
