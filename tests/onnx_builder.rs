//! The ONNX builder's helpers run through ONNX Runtime and checked against their definitions
//! (PyTorch semantics as written in spec §5).

use iplap::graph::onnx::{
    Attr, BatchNorm, ConvWeights, GraphBuilder, LayerNorm, Linear, TORCH_NORM_EPS, TensorSpec,
    Value,
};
use iplap::runtime::{ModelSession, SessionConfig};

fn pattern(n: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n)
        .map(|i| offset + scale * (((i * 7919 + 13) % 101) as f32 / 101.0 - 0.5))
        .collect()
}

/// Builds a one-input, one-output graph with `f`, runs it on `x` and returns the output.
fn run1(
    in_shape: &[usize],
    out_shape: &[usize],
    x: &[f32],
    f: impl FnOnce(&mut GraphBuilder, &Value) -> Value,
) -> Vec<f32> {
    let mut b = GraphBuilder::new("t");
    let xi = b.input_f32("x", in_shape).unwrap();
    let y = f(&mut b, &xi);
    b.output_f32(&y, "y", out_shape).unwrap();
    let model = b.finish().unwrap();
    let mut s = ModelSession::from_bytes(
        "t",
        &model.to_bytes(),
        &[TensorSpec::f32("x", in_shape)],
        &[TensorSpec::f32("y", out_shape)],
        &SessionConfig::default(),
    )
    .unwrap();
    s.run_f32(&[("x", x)], &["y"]).unwrap().remove(0)
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "index {i}: {x} vs {y}");
    }
}

#[test]
fn conv_with_folded_batch_norm_equals_explicit_batch_norm() {
    let (cin, cout) = (3, 4);
    let conv = ConvWeights {
        weight: pattern(cout * cin * 9, 1.0, 0.0),
        shape: vec![cout, cin, 3, 3],
        bias: Some(pattern(cout, 0.2, 0.05)),
    };
    let bn = BatchNorm {
        gamma: pattern(cout, 0.5, 1.0),
        beta: pattern(cout, 0.2, 0.0),
        mean: pattern(cout, 0.2, 0.0),
        var: pattern(cout, 0.5, 1.0),
        eps: TORCH_NORM_EPS,
    };
    let x = pattern(cin * 9 * 7, 2.0, 0.0);
    let folded = run1(&[1, cin, 9, 7], &[1, cout, 3, 4], &x, |b, x| {
        b.conv2d(x, &conv, Some(&bn), (3, 2), (1, 1)).unwrap()
    });
    let explicit = run1(&[1, cin, 9, 7], &[1, cout, 3, 4], &x, |b, x| {
        let y = b.conv2d(x, &conv, None, (3, 2), (1, 1)).unwrap();
        let p: Vec<Value> = [&bn.gamma, &bn.beta, &bn.mean, &bn.var]
            .iter()
            .map(|v| b.initializer_f32("bn", &[cout], v).unwrap())
            .collect();
        b.node(
            "BatchNormalization",
            &[&y, &p[0], &p[1], &p[2], &p[3]],
            &[("epsilon", Attr::Float(1e-5))],
        )
        .unwrap()
    });
    assert_close(&folded, &explicit, 1e-5);
}

#[test]
fn conv1d_stride_and_padding() {
    // Length 7, kernel 3, stride 2, pad 1 -> length 4; a single tap picks x[2i - 1 + t].
    let conv = ConvWeights {
        weight: vec![0.0, 0.0, 1.0],
        shape: vec![1, 1, 3],
        bias: None,
    };
    let x: Vec<f32> = (1..=7).map(|v| v as f32).collect();
    let y = run1(&[1, 1, 7], &[1, 1, 4], &x, |b, x| {
        b.conv1d(x, &conv, None, 2, 1).unwrap()
    });
    assert_eq!(y, vec![2.0, 4.0, 6.0, 0.0]);
}

#[test]
fn pixel_shuffle_is_crd() {
    // out[c, 2h+i, 2w+j] = in[4c + 2i + j, h, w] (spec §5.2).
    let (c, h, w) = (2, 3, 2);
    let x: Vec<f32> = (0..4 * c * h * w).map(|v| v as f32).collect();
    let y = run1(&[1, 4 * c, h, w], &[1, c, 2 * h, 2 * w], &x, |b, x| {
        b.pixel_shuffle(x, 2).unwrap()
    });
    for cc in 0..c {
        for hh in 0..h {
            for ww in 0..w {
                for i in 0..2 {
                    for j in 0..2 {
                        let got = y[(cc * 2 * h + 2 * hh + i) * 2 * w + 2 * ww + j];
                        let want = x[((4 * cc + 2 * i + j) * h + hh) * w + ww];
                        assert_eq!(got, want);
                    }
                }
            }
        }
    }
}

#[test]
fn resize_nearest_and_bilinear_halving() {
    let x = pattern(2 * 8 * 8, 4.0, 0.0);
    let near = run1(&[1, 2, 8, 8], &[1, 2, 4, 4], &x, |b, x| {
        b.resize_nearest(x, &[1, 2, 4, 4]).unwrap()
    });
    let bil = run1(&[1, 2, 8, 8], &[1, 2, 4, 4], &x, |b, x| {
        b.resize_bilinear(x, &[1, 2, 4, 4]).unwrap()
    });
    for c in 0..2 {
        for i in 0..4 {
            for j in 0..4 {
                let at = |y: usize, x_: usize| x[(c * 8 + y) * 8 + x_];
                let o = (c * 4 + i) * 4 + j;
                assert_eq!(near[o], at(2 * i, 2 * j));
                let mean = (at(2 * i, 2 * j)
                    + at(2 * i, 2 * j + 1)
                    + at(2 * i + 1, 2 * j)
                    + at(2 * i + 1, 2 * j + 1))
                    / 4.0;
                assert!((bil[o] - mean).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn norms_and_linear_match_their_definitions() {
    let (n, c, hw) = (2, 3, 10);
    let x = pattern(n * c * hw, 3.0, 0.5);
    let y = run1(&[n, c, 2, 5], &[n, c, 2, 5], &x, |b, x| {
        b.instance_norm(x, c, TORCH_NORM_EPS).unwrap()
    });
    for row in 0..n * c {
        let v = &x[row * hw..(row + 1) * hw];
        let mean = v.iter().map(|&a| a as f64).sum::<f64>() / hw as f64;
        let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / hw as f64;
        for k in 0..hw {
            let want = (v[k] as f64 - mean) / (var + 1e-5).sqrt();
            assert!((y[row * hw + k] as f64 - want).abs() < 1e-5);
        }
    }

    let ln = LayerNorm {
        gamma: pattern(hw, 0.5, 1.0),
        beta: pattern(hw, 0.2, 0.0),
        eps: TORCH_NORM_EPS,
    };
    let y = run1(&[n * c, hw], &[n * c, hw], &x, |b, x| {
        b.layer_norm(x, &ln).unwrap()
    });
    for row in 0..n * c {
        let v = &x[row * hw..(row + 1) * hw];
        let mean = v.iter().map(|&a| a as f64).sum::<f64>() / hw as f64;
        let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / hw as f64;
        for k in 0..hw {
            let want =
                (v[k] as f64 - mean) / (var + 1e-5).sqrt() * ln.gamma[k] as f64 + ln.beta[k] as f64;
            assert!((y[row * hw + k] as f64 - want).abs() < 1e-5);
        }
    }

    let lin = Linear {
        weight: pattern(4 * hw, 1.0, 0.0),
        out_features: 4,
        in_features: hw,
        bias: Some(pattern(4, 1.0, 0.0)),
    };
    let y = run1(&[n * c, hw], &[n * c, 4], &x, |b, x| {
        b.linear(x, &lin).unwrap()
    });
    for row in 0..n * c {
        for o in 0..4 {
            let want: f32 = (0..hw)
                .map(|k| lin.weight[o * hw + k] * x[row * hw + k])
                .sum::<f32>()
                + lin.bias.as_ref().unwrap()[o];
            assert!((y[row * 4 + o] - want).abs() < 1e-5);
        }
    }
}

#[test]
fn shape_helpers() {
    let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
    // (2, 3, 4) -> gather rows [2, 0] of axis 1 -> slice last axis 1..3 -> transpose -> concat.
    let y = run1(&[2, 3, 4], &[2, 2, 4], &x, |b, x| {
        let g = b.gather(x, &[2, 0], 1).unwrap();
        let s = b.slice(&g, &[2], &[1], &[3]).unwrap(); // (2, 2, 2)
        let t = b.transpose(&s, &[0, 2, 1]).unwrap();
        b.concat(&[&s, &t], 2).unwrap()
    });
    assert_eq!(&y[..4], &[9.0, 10.0, 9.0, 1.0]);
    assert_eq!(&y[4..8], &[1.0, 2.0, 10.0, 2.0]);
}

/// `ai.iplap.WinogradConv3x3` (registered with every iplap session) equals ONNX `Conv`, for an odd
/// batch (its last image is split over two work units) and an even one.
#[test]
fn winograd_operator_equals_conv() {
    use iplap::runtime::winograd_op::{DOMAIN, OP};
    let (c, k, h, w) = (16, 12, 8, 10);
    let conv = ConvWeights {
        weight: pattern(k * c * 9, 0.4, 0.0),
        shape: vec![k, c, 3, 3],
        bias: Some(pattern(k, 1.0, 0.1)),
    };
    let u = iplap::winograd::transform_weights(&conv.weight, k, c).unwrap();
    for n in [3, 2] {
        let x = pattern(n * c * h * w, 2.0, 0.0);
        let direct = run1(&[n, c, h, w], &[n, k, h, w], &x, |b, x| {
            b.conv2d(x, &conv, None, (1, 1), (1, 1)).unwrap()
        });
        let wino = run1(&[n, c, h, w], &[n, k, h, w], &x, |b, x| {
            let u = b.initializer_f32("u", &[16, k, c], &u).unwrap();
            let bias = b
                .initializer_f32("bias", &[k], conv.bias.as_ref().unwrap())
                .unwrap();
            b.custom_node(DOMAIN, OP, &[x, &u, &bias]).unwrap()
        });
        assert_close(&wino, &direct, 1e-5);
    }
}

/// Sessions built at the same time from several threads all load. ONNX Runtime's first
/// registration of a custom domain is a check-then-insert into a process-wide table that failed
/// once in CI when two face-model sessions started together; the runtime now builds sessions one
/// at a time. (The interleaving cannot be forced from here; this exercises concurrent builds.)
#[test]
fn sessions_build_concurrently() {
    const THREADS: usize = 8;
    let start = std::sync::Barrier::new(THREADS);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for i in 0..3 {
                        let x = pattern(8, 1.0, t as f32 + i as f32);
                        let y = run1(&[2, 4], &[2, 4], &x, |b, x| b.relu(x).unwrap());
                        assert_eq!(y.len(), 8);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().err())
            .map(|e| format!("{e:?}"))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:?}");
}
