use crate::kernels::matmul::MatmulForm;

/// Reads op(A)[i, kk] and op(B)[kk, j] from row-major storage laid out as `form` says.
struct Operands<'a> {
    a: &'a [f32],
    b: &'a [f32],
    form: MatmulForm,
    m: usize,
    k: usize,
    n: usize,
}

impl Operands<'_> {
    fn a(&self, i: usize, kk: usize) -> f64 {
        let index = if self.form.trans_a() {
            kk * self.m + i
        } else {
            i * self.k + kk
        };
        f64::from(self.a[index])
    }

    fn b(&self, kk: usize, j: usize) -> f64 {
        let index = if self.form.trans_b() {
            j * self.k + kk
        } else {
            kk * self.n + j
        };
        f64::from(self.b[index])
    }
}

/// `op(A)·op(B) (+ bias row)` for an M×K by K×N product, summed in f64 and rounded once.
///
/// `a` and `b` are row-major and stored as `form` says (see [`MatmulForm`]).
pub fn matmul(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    form: MatmulForm,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "cpu::matmul: A has the wrong length");
    assert_eq!(b.len(), k * n, "cpu::matmul: B has the wrong length");
    let ops = Operands {
        a,
        b,
        form,
        m,
        k,
        n,
    };
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = bias.map_or(0.0, |bias| f64::from(bias[j]));
            for kk in 0..k {
                sum += ops.a(i, kk) * ops.b(kk, j);
            }
            c[i * n + j] = sum as f32;
        }
    }
    c
}
