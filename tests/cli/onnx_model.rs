//! A tiny ONNX encoder the tests write themselves (protobuf by hand, no Python), and the
//! same network computed directly in Rust as the oracle.
//!
//! image [N, 3, S, S] → Conv(3→4, 3×3, pad 1) + bias → Relu → GlobalAveragePool → Flatten
//! → `features` [N, 4]; `logits` = MatMul(features, W [4×2]) [N, 2].

pub const C_OUT: usize = 4;

/// The weights, from a fixed formula (no RNG needed).
pub struct Tiny {
    pub size: usize,
    pub conv: Vec<f32>, // [4, 3, 3, 3]
    pub bias: Vec<f32>, // [4]
    pub w: Vec<f32>,    // [4, 2]
}

impl Tiny {
    pub fn new(size: usize) -> Self {
        let conv = (0..C_OUT * 27)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 17.0)
            .collect();
        let bias = (0..C_OUT).map(|i| 0.1 * i as f32 - 0.15).collect();
        let w = (0..C_OUT * 2)
            .map(|i| ((i * 5 % 7) as f32 - 3.0) / 4.0)
            .collect();
        Tiny {
            size,
            conv,
            bias,
            w,
        }
    }

    /// The network on one image in CHW order (values already scaled).
    pub fn forward(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let s = self.size as i64;
        let mut feat = vec![0f32; C_OUT];
        for (o, f) in feat.iter_mut().enumerate() {
            let mut sum = 0f64;
            for y in 0..s {
                for xx in 0..s {
                    let mut acc = self.bias[o] as f64;
                    for c in 0..3 {
                        for ky in 0..3i64 {
                            for kx in 0..3i64 {
                                let (iy, ix) = (y + ky - 1, xx + kx - 1);
                                if iy >= 0 && iy < s && ix >= 0 && ix < s {
                                    let wv = self.conv
                                        [((o * 3 + c) * 3 + ky as usize) * 3 + kx as usize]
                                        as f64;
                                    acc += wv
                                        * x[(c * self.size + iy as usize) * self.size + ix as usize]
                                            as f64;
                                }
                            }
                        }
                    }
                    sum += acc.max(0.0);
                }
            }
            *f = (sum / (s * s) as f64) as f32;
        }
        let logits = (0..2)
            .map(|j| (0..C_OUT).map(|o| feat[o] * self.w[o * 2 + j]).sum())
            .collect();
        (feat, logits)
    }

    /// The model as ONNX bytes (IR 8, opset 17, dynamic batch).
    pub fn onnx(&self) -> Vec<u8> {
        let s = self.size as i64;
        let mut g = Vec::new();
        node(
            &mut g,
            "Conv",
            &["image", "W", "B"],
            &["conv"],
            &[ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        );
        node(&mut g, "Relu", &["conv"], &["relu"], &[]);
        node(&mut g, "GlobalAveragePool", &["relu"], &["pool"], &[]);
        node(&mut g, "Flatten", &["pool"], &["features"], &[]);
        node(&mut g, "MatMul", &["features", "L"], &["logits"], &[]);
        bytes(&mut g, 2, b"tiny");
        tensor(&mut g, 5, "W", &[C_OUT as i64, 3, 3, 3], &self.conv);
        tensor(&mut g, 5, "B", &[C_OUT as i64], &self.bias);
        tensor(&mut g, 5, "L", &[C_OUT as i64, 2], &self.w);
        value_info(&mut g, 11, "image", &[None, Some(3), Some(s), Some(s)]);
        value_info(&mut g, 12, "features", &[None, Some(C_OUT as i64)]);
        value_info(&mut g, 12, "logits", &[None, Some(2)]);
        let mut m = Vec::new();
        varint_field(&mut m, 1, 8);
        bytes(&mut m, 2, b"dagrun-tests");
        bytes(&mut m, 7, &g);
        let mut opset = Vec::new();
        bytes(&mut opset, 1, b"");
        varint_field(&mut opset, 2, 17);
        bytes(&mut m, 8, &opset);
        m
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: i64) {
    key(out, field, 0);
    varint(out, v as u64);
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn ints(name: &str, v: &[i64]) -> Vec<u8> {
    let mut a = Vec::new();
    bytes(&mut a, 1, name.as_bytes());
    for &x in v {
        varint_field(&mut a, 8, x);
    }
    varint_field(&mut a, 20, 7); // AttributeType INTS
    a
}

fn node(g: &mut Vec<u8>, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Vec<u8>]) {
    let mut n = Vec::new();
    for i in inputs {
        bytes(&mut n, 1, i.as_bytes());
    }
    for o in outputs {
        bytes(&mut n, 2, o.as_bytes());
    }
    bytes(&mut n, 3, op.as_bytes());
    bytes(&mut n, 4, op.as_bytes());
    for a in attrs {
        bytes(&mut n, 5, a);
    }
    bytes(g, 1, &n);
}

fn tensor(g: &mut Vec<u8>, field: u32, name: &str, dims: &[i64], data: &[f32]) {
    let mut t = Vec::new();
    for &d in dims {
        varint_field(&mut t, 1, d);
    }
    varint_field(&mut t, 2, 1); // FLOAT
    bytes(&mut t, 8, name.as_bytes());
    let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    bytes(&mut t, 9, &raw);
    bytes(g, field, &t);
}

fn value_info(g: &mut Vec<u8>, field: u32, name: &str, dims: &[Option<i64>]) {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Some(v) => varint_field(&mut dim, 1, *v),
            None => bytes(&mut dim, 2, b"N"),
        }
        bytes(&mut shape, 1, &dim);
    }
    let mut tt = Vec::new();
    varint_field(&mut tt, 1, 1); // FLOAT
    bytes(&mut tt, 2, &shape);
    let mut ty = Vec::new();
    bytes(&mut ty, 1, &tt);
    let mut vi = Vec::new();
    bytes(&mut vi, 1, name.as_bytes());
    bytes(&mut vi, 2, &ty);
    bytes(g, field, &vi);
}
