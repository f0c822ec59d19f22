//! Whether an executable is statically linked, read from its ELF program headers (so
//! nothing depends on `file(1)`). Used by tests/install.rs and the bench.

use std::fmt;
use std::path::Path;

/// How an ELF executable is linked.
#[derive(Debug, PartialEq, Eq)]
pub enum Linkage {
    /// A PT_INTERP program header: the kernel starts this dynamic loader first.
    Dynamic { interpreter: String },
    /// No program interpreter. `pie`: position independent (static-pie, which relocates
    /// itself at start), else a fixed-address executable.
    Static { pie: bool },
}

impl fmt::Display for Linkage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Linkage::Dynamic { interpreter } => {
                write!(f, "dynamically linked (interpreter {interpreter})")
            }
            Linkage::Static { pie: true } => write!(f, "statically linked (static-pie)"),
            Linkage::Static { pie: false } => write!(f, "statically linked (non-PIE)"),
        }
    }
}

const PT_INTERP: u64 = 3;
const ET_DYN: u64 = 3;

/// The linkage of the ELF file at `path`; an error for anything else (Mach-O on macOS).
pub fn linkage(path: &Path) -> Result<Linkage, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.len() < 52 || !b.starts_with(b"\x7fELF") {
        return Err(format!("{}: not an ELF file", path.display()));
    }
    let is64 = match b[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let le = match b[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF data encoding {d}")),
    };
    // An unsigned field of `n` bytes at `off`, in the file's byte order.
    let rd = |off: u64, n: u64| -> Result<u64, String> {
        let s = usize::try_from(off)
            .ok()
            .and_then(|o| b.get(o..o.checked_add(n as usize)?))
            .ok_or_else(|| format!("ELF field at {off} beyond the file"))?;
        let mut v = 0u64;
        for i in 0..s.len() {
            let byte = if le { s[s.len() - 1 - i] } else { s[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    let e_type = rd(16, 2)?;
    let (phoff, phentsize, phnum) = if is64 {
        (rd(32, 8)?, rd(54, 2)?, rd(56, 2)?)
    } else {
        (rd(28, 4)?, rd(42, 2)?, rd(44, 2)?)
    };
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        if rd(h, 4)? != PT_INTERP {
            continue;
        }
        let (off, size) = if is64 {
            (rd(h + 8, 8)?, rd(h + 32, 8)?)
        } else {
            (rd(h + 4, 4)?, rd(h + 16, 4)?)
        };
        let name = usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, n)| b.get(o..o.checked_add(n)?))
            .ok_or("PT_INTERP beyond the file")?;
        let name = name.split(|&c| c == 0).next().unwrap_or_default();
        return Ok(Linkage::Dynamic {
            interpreter: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(Linkage::Static {
        pie: e_type == ET_DYN,
    })
}
