//! The fused MLP path against burn: outputs, parameter and input gradients (autodiff), optimizer
//! steps, clipping, target updates and checkpoints, on every instruction set this CPU has.

use proptest::prelude::*;
use rlox_nn::burn;
use rlox_nn::burn::module::{Module, ModuleVisitor, Param};
use rlox_nn::fused::{self, FusedMlp, FusedOptimizer, Isa};
use rlox_nn::{Activation, Device, Grads, Mlp, MlpConfig, OptimizerConfig, Tensor, TensorData};
use std::collections::BTreeMap;

/// Deterministic uniform numbers in [-1, 1) from a seed (xorshift).
fn randoms(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn isas() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.supported()).collect()
}

fn device() -> Device {
    rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// `|a - b| <= tol * (|b| + max |b|)` entry by entry: relative to each entry and to the tensor's
/// scale (an entry that cancels to near zero is held to the tensor's scale, not its own).
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()));
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let err = (x as f64 - y as f64).abs();
        assert!(err <= tol * ((y as f64).abs() + scale) + 1e-30, "{what}[{i}]: fused {x} vs burn {y} (scale {scale})");
    }
}

/// Outputs, per-layer (weight, bias) gradients and the input gradient.
type Reference = (Vec<f32>, Vec<(Vec<f32>, Vec<f32>)>, Vec<f32>);

/// burn's outputs, parameter gradients (weight, bias per layer) and input gradient of
/// `loss = sum(mlp(x) ⊙ d_out)`, whose gradient at the output is `d_out`.
fn burn_reference(mlp: &Mlp, x: &[f32], batch: usize, d_out: &[f32], device: &Device) -> Reference {
    let xt = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [batch, mlp.input_dim()]), device).require_grad();
    let y = mlp.forward(xt.clone());
    let out = values(y.clone());
    let dt = Tensor::<2>::from_data(TensorData::new(d_out.to_vec(), [batch, mlp.output_dim()]), device);
    let loss = (y * dt).sum();
    let grads = loss.backward();
    let dx = values(xt.grad(&grads).expect("input gradient"));
    let grads = Grads::from_grads(grads, mlp);
    let per_layer = mlp
        .layers
        .iter()
        .map(|l| {
            let gw = values(grads.get::<2>(l.weight.id).expect("weight gradient"));
            let gb = values(grads.get::<1>(l.bias.as_ref().unwrap().id).expect("bias gradient"));
            (gw, gb)
        })
        .collect();
    (out, per_layer, dx)
}

#[derive(Debug, Clone)]
struct Case {
    widths: Vec<usize>,
    activation: Activation,
    members: usize,
    batch: usize,
    seed: u64,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        1usize..12,
        proptest::collection::vec(1usize..80, 0..4),
        1usize..6,
        prop_oneof![Just(Activation::Relu), Just(Activation::Tanh)],
        1usize..3,
        1usize..70,
        any::<u64>(),
    )
        .prop_map(|(input, hidden, output, activation, members, batch, seed)| {
            let mut widths = vec![input];
            widths.extend(hidden);
            widths.push(output);
            Case { widths, activation, members, batch, seed }
        })
}

fn check_against_burn(c: &Case) {
    let device = device();
    let (d_in, d_o) = (c.widths[0], *c.widths.last().unwrap());
    let config = MlpConfig::new(d_in, &c.widths[1..c.widths.len() - 1], d_o).with_activation(c.activation);
    let mut rng = rlox_core::seeding::rng_from_seed(c.seed);
    let base = FusedMlp::new(&config, c.members, &mut rng);
    let x: Vec<f32> = randoms(c.seed ^ 1, c.batch * d_in).iter().map(|v| v * 2.0).collect();
    let d_out = randoms(c.seed ^ 2, c.members * c.batch * d_o);
    let mut want_out = Vec::new();
    let mut want_grads = Vec::new();
    let mut want_dx = vec![0.0f32; c.batch * d_in];
    for m in 0..c.members {
        let mlp = base.to_mlp(m, &device);
        let (out, grads, dx) =
            burn_reference(&mlp, &x, c.batch, &d_out[m * c.batch * d_o..(m + 1) * c.batch * d_o], &device);
        want_out.extend(out);
        want_grads.push(grads);
        want_dx.iter_mut().zip(dx).for_each(|(a, b)| *a += b);
    }
    for isa in isas() {
        let net = base.clone().with_isa(isa);
        let mut ws = net.workspace(c.batch / 2 + 1); // too small on purpose: forward grows it
        let out = net.forward(&x, c.batch, &mut ws).to_vec();
        assert_close(&format!("{isa:?} {c:?} output"), &out, &want_out, 1e-5);
        let mut dx = vec![f32::NAN; c.batch * d_in];
        net.backward(&mut ws, &d_out, true, Some(&mut dx));
        assert_close(&format!("{isa:?} {c:?} d_input"), &dx, &want_dx, 1e-5);
        let member_len = net.member_len();
        for (m, grads) in want_grads.iter().enumerate() {
            let mut at = m * member_len;
            for (l, (gw, gb)) in grads.iter().enumerate() {
                let got = &ws.grads()[at..at + gw.len()];
                assert_close(&format!("{isa:?} {c:?} member {m} layer {l} weight grad"), got, gw, 1e-5);
                at += gw.len();
                let got = &ws.grads()[at..at + gb.len()];
                assert_close(&format!("{isa:?} {c:?} member {m} layer {l} bias grad"), got, gb, 1e-5);
                at += gb.len();
            }
        }
        // Input gradient only: the parameter gradient is left as it was.
        let before = ws.grads().to_vec();
        let mut dx2 = vec![0.0f32; c.batch * d_in];
        net.backward(&mut ws, &d_out, false, Some(&mut dx2));
        assert_eq!(dx2, dx);
        assert_eq!(ws.grads(), &before[..]);
    }
}

proptest! {
    // Seeded, so that every run checks the same cases (change the seed to explore others).
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_206),
        ..ProptestConfig::default()
    })]

    /// Outputs, parameter gradients and input gradients equal burn autodiff's to 1e-5 (relative to
    /// each entry and to the tensor's largest entry), for random shapes, batches and inputs.
    #[test]
    fn forward_and_backward_match_burn_autodiff(c in cases()) {
        check_against_burn(&c);
    }
}

/// The shapes of the RL networks themselves (DQN CartPole, PPO 64x64 tanh, TD3/SAC critics).
#[test]
fn rl_shapes_match_burn_autodiff() {
    for (widths, activation, members, batch) in [
        (vec![4, 256, 256, 2], Activation::Relu, 1, 64),
        (vec![4, 64, 64, 2], Activation::Tanh, 1, 32),
        (vec![6, 64, 64, 1], Activation::Tanh, 1, 256),
        (vec![4, 400, 300, 1], Activation::Relu, 2, 256),
    ] {
        check_against_burn(&Case { widths, activation, members, batch, seed: 7 });
    }
}

/// A member whose output gradient is zero is skipped: zero parameter gradient, no input gradient.
#[test]
fn zero_output_gradient_skips_a_member() {
    let mut rng = rlox_core::seeding::rng_from_seed(3);
    let net = FusedMlp::new(&MlpConfig::new(5, &[16], 1), 2, &mut rng);
    let x = randoms(1, 8 * 5);
    let mut ws = net.workspace(8);
    net.forward(&x, 8, &mut ws);
    let mut d_out = randoms(2, 16);
    d_out[8..].fill(0.0);
    let mut both = vec![0.0; 40];
    net.backward(&mut ws, &d_out, true, Some(&mut both));
    assert!(ws.grads()[net.member_len()..].iter().all(|&g| g == 0.0));
    assert!(ws.grads()[..net.member_len()].iter().any(|&g| g != 0.0));
    // The first member alone gives the same input gradient.
    let single = FusedMlp::from_mlp(&net.to_mlp(0, &device()));
    let mut ws1 = single.workspace(8);
    single.forward(&x, 8, &mut ws1);
    let mut one = vec![0.0; 40];
    single.backward(&mut ws1, &d_out[..8], true, Some(&mut one));
    assert_eq!(one, both);
    assert_eq!(ws1.grads(), &ws.grads()[..net.member_len()]);
}

/// Flat values of a module's parameters in visiting order.
struct Flatten(Vec<f32>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.extend(values(param.val()));
    }
}

fn flat<M: Module>(m: &M) -> Vec<f32> {
    let mut f = Flatten(Vec::new());
    m.visit(&mut f);
    f.0
}

/// A burn gradient map holding `flat_grads` (laid out like the fused parameters) for `mlp`.
fn burn_grads(mlp: &Mlp, flat_grads: &[f32], device: &Device) -> Grads {
    // Gradients live on the plain (non-autodiff) device, as `Grads::from_grads` leaves them.
    let device = &device.clone().inner();
    let mut grads = Grads::new();
    let mut at = 0;
    for l in &mlp.layers {
        let [i, o] = l.weight.lazy_shape().dims::<2>();
        let w = Tensor::<2>::from_data(TensorData::new(flat_grads[at..at + i * o].to_vec(), [i, o]), device);
        grads.register(l.weight.id, w);
        at += i * o;
        let b = Tensor::<1>::from_data(TensorData::new(flat_grads[at..at + o].to_vec(), [o]), device);
        grads.register(l.bias.as_ref().unwrap().id, b);
        at += o;
    }
    grads
}

/// Every optimizer takes the steps of rlox-nn's burn-path optimizer given the same gradients: the
/// fused host Adam/AdamW bit for bit, burn's SGD and RMSprop to rounding.
#[test]
fn optimizers_match_the_burn_path() {
    let configs = [
        (OptimizerConfig::adam(), true),
        (OptimizerConfig::Adam { beta1: 0.8, beta2: 0.99, eps: 1e-5, weight_decay: 0.1 }, true),
        (OptimizerConfig::adamw(), true),
        (OptimizerConfig::sgd(), false),
        (OptimizerConfig::Sgd { momentum: 0.9, nesterov: false, weight_decay: 0.01 }, false),
        (OptimizerConfig::Sgd { momentum: 0.8, nesterov: true, weight_decay: 0.0 }, false),
        (OptimizerConfig::rmsprop(1e-5), false),
        (OptimizerConfig::RmsProp { alpha: 0.9, eps: 1e-6, momentum: 0.5, centered: true, weight_decay: 0.01 }, false),
        (OptimizerConfig::RmsProp { alpha: 0.95, eps: 1e-8, momentum: 0.0, centered: true, weight_decay: 0.0 }, false),
        (OptimizerConfig::RmsProp { alpha: 0.99, eps: 1e-8, momentum: 0.9, centered: false, weight_decay: 0.0 }, false),
    ];
    for isa in isas() {
        for (config, bitwise) in configs {
            let device = device();
            let mut rng = rlox_core::seeding::rng_from_seed(9);
            let mut net = FusedMlp::new(&MlpConfig::new(3, &[20, 7], 2), 1, &mut rng).with_isa(isa);
            let mut mlp = net.to_mlp(0, &device);
            let mut opt = FusedOptimizer::new(config, net.num_params()).with_isa(isa);
            let mut reference = config.build();
            for step in 0..12 {
                let g: Vec<f32> = randoms(100 + step, net.num_params()).iter().map(|v| v * 0.3).collect();
                let lr = 0.01 * (1.0 + step as f64 / 10.0);
                opt.step(lr, net.params_mut(), &g);
                let grads = burn_grads(&mlp, &g, &device);
                mlp = reference.step(lr, mlp, grads);
            }
            let want = flat(&mlp);
            if bitwise {
                assert_eq!(net.params(), &want[..], "{isa:?} {config:?}");
            } else {
                assert_close(&format!("{isa:?} {config:?}"), net.params(), &want, 1e-6);
            }
            assert_eq!(opt.steps(), 12);
        }
    }
}

/// The state round-trips: an optimizer restored from another's state takes the same next steps.
#[test]
fn optimizer_state_resumes_exactly() {
    for config in [
        OptimizerConfig::adam(),
        OptimizerConfig::RmsProp { alpha: 0.9, eps: 1e-6, momentum: 0.5, centered: true, weight_decay: 0.0 },
    ] {
        let mut a = FusedOptimizer::new(config, 50);
        let mut w = randoms(1, 50);
        for s in 0..3 {
            a.step(0.1, &mut w, &randoms(10 + s, 50));
        }
        let mut b = FusedOptimizer::new(config, 50);
        b.set_state(a.state()).unwrap();
        let mut w2 = w.clone();
        for s in 0..3 {
            a.step(0.1, &mut w, &randoms(20 + s, 50));
            b.step(0.1, &mut w2, &randoms(20 + s, 50));
        }
        assert_eq!(w, w2);
        assert_eq!(b.steps(), 6);
        let mut short = a.state();
        short.buffers[0].pop();
        let err = b.set_state(short).unwrap_err().to_string();
        assert!(err.contains(a.buffer_names()[0]) && err.contains("49"), "{err}");
    }
}

/// Global-norm clipping and the target update agree with rlox-nn's burn versions.
#[test]
fn clipping_and_polyak_match_the_burn_path() {
    let device = device();
    let mut rng = rlox_core::seeding::rng_from_seed(4);
    let net = FusedMlp::new(&MlpConfig::new(3, &[33], 4), 1, &mut rng);
    let mlp = net.to_mlp(0, &device);
    let g: Vec<f32> = randoms(5, net.num_params()).iter().map(|v| v * 3.0).collect();
    for max_norm in [0.5, 1e9] {
        let mut mine = g.clone();
        let norm = fused::clip_grad_norm(&mut mine, max_norm);
        let mut theirs = burn_grads(&mlp, &g, &device);
        let want_norm = rlox_nn::clip_grad_norm(&mlp, &mut theirs, max_norm);
        assert!((norm - want_norm).abs() < 1e-6 * want_norm, "{norm} vs {want_norm}");
        let mut flat_theirs = Vec::new();
        for l in &mlp.layers {
            flat_theirs.extend(values(theirs.get::<2>(l.weight.id).unwrap()));
            flat_theirs.extend(values(theirs.get::<1>(l.bias.as_ref().unwrap().id).unwrap()));
        }
        assert_close("clipped", &mine, &flat_theirs, 1e-6);
    }
    let mut nan = g.clone();
    nan[3] = f32::NAN;
    assert!(fused::clip_grad_norm(&mut nan, 1.0).is_nan());
    assert!(nan[0] == g[0], "a non-finite norm leaves the gradient untouched");

    let online = FusedMlp::new(&MlpConfig::new(3, &[33], 4), 1, &mut rng);
    let mut target = net.clone();
    fused::polyak_update(target.params_mut(), online.params(), 0.005);
    let want = rlox_nn::polyak_update(mlp.valid(), &online.to_mlp(0, &device), 0.005);
    assert_close("polyak", target.params(), &flat(&want), 1e-7);
    fused::polyak_update(target.params_mut(), online.params(), 1.0);
    assert_eq!(target.params(), online.params());
}

/// Two MLPs in one burn module, named like rlox-deep's `Critics` (`nets.<i>.net.layers...`).
#[derive(Module, Debug)]
struct Twin {
    nets: Vec<Wrapped>,
}

#[derive(Module, Debug)]
struct Wrapped {
    net: Mlp,
}

/// A checkpoint written by either path loads in the other with the same values.
#[test]
fn checkpoints_load_across_paths() {
    let dir = tempfile::tempdir().unwrap();
    let device = device();
    let config = MlpConfig::new(4, &[8, 8], 2).with_activation(Activation::Tanh);
    let meta = BTreeMap::from([("algo".to_string(), "test".to_string())]);

    // fused -> burn
    let mut rng = rlox_core::seeding::rng_from_seed(1);
    let net = FusedMlp::new(&config, 1, &mut rng);
    let path = dir.path().join("fused.safetensors");
    net.save_safetensors(&path, &[""], &meta).unwrap();
    let mlp = rlox_nn::load_safetensors(config.init(&device), &path).unwrap();
    assert_eq!(flat(&mlp), net.params());
    assert_eq!(rlox_nn::read_safetensors_metadata(&path).unwrap()["algo"], "test");
    // The same bytes as burn writes for the same values.
    assert_eq!(rlox_nn::to_safetensors_bytes(&mlp, &meta).unwrap(), net.to_safetensors_bytes(&[""], &meta).unwrap());

    // burn -> fused
    let other = config.init(&device);
    let path = dir.path().join("burn.safetensors");
    rlox_nn::save_safetensors(&other, &path, &meta).unwrap();
    let mut back = FusedMlp::zeros(&[4, 8, 8, 2], Activation::Tanh, 1);
    back.load_safetensors(&path, &[""]).unwrap();
    assert_eq!(back.params(), &flat(&other)[..]);
    assert_eq!(FusedMlp::from_mlp(&other).params(), back.params());

    // Twin critics: the members under their module paths.
    let twin_config = MlpConfig::new(4, &[8], 1);
    let mut rng = rlox_core::seeding::rng_from_seed(2);
    let twin_net = FusedMlp::new(&twin_config, 2, &mut rng);
    let prefixes = ["nets.0.net.", "nets.1.net."];
    let path = dir.path().join("twin.safetensors");
    twin_net.save_safetensors(&path, &prefixes, &BTreeMap::new()).unwrap();
    let twin = Twin { nets: (0..2).map(|_| Wrapped { net: twin_config.init(&device) }).collect() };
    let twin = rlox_nn::load_safetensors(twin, &path).unwrap();
    assert_eq!(flat(&twin), twin_net.params());

    // Another shape: an error that names the file and the tensor, and the network is unchanged.
    let mut wrong = FusedMlp::zeros(&[4, 16, 8, 2], Activation::Tanh, 1);
    let err = wrong.load_safetensors(dir.path().join("burn.safetensors"), &[""]).unwrap_err().to_string();
    assert!(err.contains("burn.safetensors") && err.contains("layers.0.weight") && err.contains("[4, 16]"), "{err}");
    assert!(wrong.params().iter().all(|&v| v == 0.0));
    let err = wrong.load_safetensors(dir.path().join("missing"), &[""]).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

/// A regression net trained with the fused step (MSE, Adam, clipping) fits its target.
#[test]
fn fused_training_fits_a_function() {
    let mut rng = rlox_core::seeding::rng_from_seed(11);
    let mut net = FusedMlp::new(&MlpConfig::new(2, &[32, 32], 1).with_activation(Activation::Tanh), 1, &mut rng);
    let mut opt = FusedOptimizer::new(OptimizerConfig::adam(), net.num_params());
    let batch = 64;
    let x = randoms(3, batch * 2);
    let y: Vec<f32> = x.chunks(2).map(|p| (2.0 * p[0]).sin() * p[1]).collect();
    let mut ws = net.workspace(batch);
    let mut d_out = vec![0.0f32; batch];
    let mut losses = Vec::new();
    for _ in 0..1500 {
        let out = net.forward(&x, batch, &mut ws);
        let mut loss = 0.0;
        for ((d, &o), &t) in d_out.iter_mut().zip(out).zip(&y) {
            loss += ((o - t) * (o - t)) as f64 / batch as f64;
            *d = 2.0 * (o - t) / batch as f32;
        }
        losses.push(loss);
        net.backward(&mut ws, &d_out, true, None);
        fused::clip_grad_norm(ws.grads_mut(), 10.0);
        opt.step(3e-3, net.params_mut(), ws.grads());
    }
    assert!(losses[losses.len() - 1] < losses[0] / 100.0, "{} -> {}", losses[0], losses[losses.len() - 1]);
}
