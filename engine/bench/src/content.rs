//! File contents for the benchmarks' synthetic install trees: text that compresses like C++
//! headers and bytes that compress like machine code, from a seeded [`Rng`].

use crate::synthetic::Rng;

const WORDS: &[&str] = &[
    "template",
    "typename",
    "const",
    "std::",
    "return",
    "namespace",
    "__glibcxx",
    "operator",
    "size_t",
    "noexcept",
    "constexpr",
    "static",
    "inline",
    "struct",
    "class",
    "public:",
    "private:",
    "void",
    "bool",
    "char",
    "int",
    "unsigned",
    "long",
    "_Tp",
    "_Alloc",
    "iterator",
    "#include",
    "#define",
    "#ifdef",
    "#endif",
    "(",
    ")",
    "{",
    "}",
    ";",
    "&&",
    "::",
    "<",
    ">",
];

/// Appends text like C++ headers (gzip -6 ≈ 4:1) to `out` until it holds `len` bytes.
pub fn text_chunk(rng: &mut Rng, len: usize, out: &mut Vec<u8>) {
    while out.len() < len {
        let w = WORDS[rng.below(WORDS.len())];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.below(9) == 0 { b'\n' } else { b' ' });
        if rng.below(23) == 0 {
            out.extend_from_slice(format!("{:x}", rng.next_u64() & 0xffff).as_bytes());
        }
    }
    out.truncate(len);
}

/// Appends bytes like machine code and data (gzip -6 ≈ 2.5–3:1): instruction-like records with
/// repeated opcodes and random operands, runs of zeros, and strings.
pub fn binary_chunk(rng: &mut Rng, len: usize, out: &mut Vec<u8>) {
    const OPS: &[&[u8]] = &[
        b"\x48\x89\xe5",
        b"\x48\x83\xec",
        b"\xe8",
        b"\x48\x8b\x45",
        b"\x0f\x1f\x44\x00\x00",
        b"\xc3",
        b"\x55",
        b"\x41\x57",
        b"\x48\x8d\x3d",
        b"\x74",
        b"\x75",
        b"\xeb",
    ];
    while out.len() < len {
        match rng.below(16) {
            0 => out.extend(std::iter::repeat_n(0u8, rng.below(48))),
            1 => text_chunk(rng, out.len() + 24, out),
            _ => {
                out.extend_from_slice(OPS[rng.below(OPS.len())]);
                let r = rng.next_u64().to_le_bytes();
                out.extend_from_slice(&r[..rng.below(5)]);
            }
        }
    }
    out.truncate(len);
}
