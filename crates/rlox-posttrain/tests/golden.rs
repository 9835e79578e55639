//! The loss functions against TRL 1.16's numbers (tests/fixtures/posttrain_golden.json, computed from
//! TRL's formulas; the GRPO cases by TRL's own loss code). The golden values are rounded to 6 decimals,
//! so the `f64` functions must agree within 1e-6 (rounding is at most 5e-7). The tensor versions run in
//! f32 and must agree within 1e-6 relative (plus the same rounding slack).

use rlox_nn::{Tensor, TensorData};
use rlox_posttrain::losses::*;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/posttrain_golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn vec(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-6, "{what}: got {got}, TRL {want}");
}

fn close_f32(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0) + 5e-7, "{what} (tensor): got {got}, TRL {want}");
}

fn t1(x: &[f64]) -> Tensor<1> {
    let d = rlox_nn::cpu_device().unwrap();
    Tensor::<1>::from_data(TensorData::new(x.iter().map(|&v| v as f32).collect::<Vec<_>>(), [x.len()]), &d)
}

fn t2(x: &[f64], rows: usize) -> Tensor<2> {
    let d = rlox_nn::cpu_device().unwrap();
    let cols = x.len() / rows;
    Tensor::<2>::from_data(TensorData::new(x.iter().map(|&v| v as f32).collect::<Vec<_>>(), [rows, cols]), &d)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_into_vec_as::<f32>().unwrap().into_iter().map(f64::from).collect()
}

#[test]
fn dpo_losses_match_trl() {
    let g = golden();
    let i = &g["dpo_inputs"];
    let (pc, pr, rc, rr, lc, lr) =
        (vec(&i["pc"]), vec(&i["pr"]), vec(&i["rc"]), vec(&i["rr"]), vec(&i["Lc"]), vec(&i["Lr"]));
    let beta = i["beta"].as_f64().unwrap();
    let ls = i["label_smoothing"].as_f64().unwrap();
    let b = DpoBatch { pc: &pc, pr: &pr, rc: &rc, rr: &rr, lc: &lc, lr: &lr };
    let cases = [
        ("sigmoid", DpoLossType::Sigmoid, 0.0),
        ("cdpo_trl<=0.28_openrlhf", DpoLossType::Sigmoid, ls),
        ("robust", DpoLossType::Robust, ls),
        ("hinge", DpoLossType::Hinge, 0.0),
        ("ipo_trl1x_length_normalised", DpoLossType::Ipo, 0.0),
    ];
    for (key, ty, eps) in cases {
        let want = vec(&g[key]);
        let got = dpo_losses(&b, beta, ty, eps);
        let tensor = values(dpo_loss_tensor(t1(&pc), t1(&pr), t1(&rc), t1(&rr), t1(&lc), t1(&lr), beta, ty, eps));
        for k in 0..want.len() {
            close(got[k], want[k], &format!("{key}[{k}]"));
            close_f32(tensor[k], want[k], &format!("{key}[{k}]"));
        }
    }
    // The summed (not length-normalised) IPO of OpenRLHF is what IPO gives with unit lengths.
    let ones = vec![1.0; 3];
    let summed = DpoBatch { lc: &ones, lr: &ones, ..b };
    for (k, w) in vec(&g["ipo_openrlhf_summed"]).iter().enumerate() {
        close(dpo_losses(&summed, beta, DpoLossType::Ipo, 0.0)[k], *w, "ipo summed");
    }
    // `sigmoid_norm`: the sigmoid loss on length-normalised log-ratios (per-token mean log-probs).
    let n = |x: &[f64], l: &[f64]| x.iter().zip(l).map(|(a, b)| a / b).collect::<Vec<_>>();
    let (npc, npr, nrc, nrr) = (n(&pc, &lc), n(&pr, &lr), n(&rc, &lc), n(&rr, &lr));
    let normed = DpoBatch { pc: &npc, pr: &npr, rc: &nrc, rr: &nrr, ..b };
    for (k, w) in vec(&g["sigmoid_norm"]).iter().enumerate() {
        close(dpo_losses(&normed, beta, DpoLossType::Sigmoid, 0.0)[k], *w, "sigmoid_norm");
    }
    // Metrics and the batch loss.
    let m = DpoMetrics::compute(&b, beta);
    let gm = &g["metrics"];
    for (name, v) in m.named() {
        if let Some(w) = gm.get(name) {
            close(v, w.as_f64().unwrap(), name);
        }
    }
    let mean = dpo_losses(&b, beta, DpoLossType::Sigmoid, 0.0).iter().sum::<f64>() / 3.0;
    close(mean, gm["loss(sigmoid, batch mean)"].as_f64().unwrap(), "batch loss");
}

#[test]
fn reward_model_loss_matches_trl() {
    let g = golden();
    let rm = &g["rm"];
    let (c, r, m) = (vec(&rm["inputs"]["chosen"]), vec(&rm["inputs"]["rejected"]), vec(&rm["inputs"]["margin"]));
    close(reward_model_loss(&c, &r, None, None), rm["loss"].as_f64().unwrap(), "rm loss");
    close(reward_model_loss(&c, &r, Some(&m), None), rm["loss_with_margin"].as_f64().unwrap(), "rm margin");
    close(0.01 * reward_centering_term(&c, &r), rm["center_rewards_term(coef=0.01)"].as_f64().unwrap(), "centering");
    close(reward_accuracy(&c, &r), rm["accuracy"].as_f64().unwrap(), "accuracy");
    let t = values(reward_model_loss_tensor(t1(&c), t1(&r), Some(t1(&m)), None))[0];
    close_f32(t, rm["loss_with_margin"].as_f64().unwrap(), "rm margin");
    let with_center = values(reward_model_loss_tensor(t1(&c), t1(&r), None, Some(0.01)))[0];
    close_f32(with_center, rm["loss"].as_f64().unwrap() + 0.0099, "rm + centering");
}

#[test]
fn grpo_advantages_and_losses_match_trl() {
    let g = golden();
    let gr = &g["grpo"];
    let i = &gr["inputs"];
    let rewards = vec(&i["rewards"]);
    let gsize = i["G"].as_u64().unwrap() as usize;
    let t = i["T"].as_u64().unwrap() as usize;
    for (key, scale) in [
        ("adv_scale_group", ScaleRewards::Group),
        ("adv_scale_batch", ScaleRewards::Batch),
        ("adv_scale_none", ScaleRewards::None),
    ] {
        let (adv, _) = grpo_advantages(&rewards, gsize, scale);
        for (k, w) in vec(&gr[key]).iter().enumerate() {
            close(adv[k], *w, &format!("{key}[{k}]"));
        }
    }
    let (adv, _) = grpo_advantages(&rewards, gsize, ScaleRewards::Group);
    let (logp, old, refp) = (vec(&i["logp"]), vec(&i["old_logp"]), vec(&i["ref_logp"]));
    let lens = vec(&i["lens"]);
    let mask: Vec<f64> = lens.iter().flat_map(|&l| (0..t).map(move |j| ((j as f64) < l) as u8 as f64)).collect();
    let b = adv.len();
    let eps = i["epsilon"].as_f64().unwrap();
    for (name, ty) in [
        ("grpo", GrpoLossType::Grpo),
        ("bnpo", GrpoLossType::Bnpo),
        ("dr_grpo", GrpoLossType::DrGrpo),
        ("dapo", GrpoLossType::Dapo),
    ] {
        let s = GrpoLossSettings {
            epsilon: eps,
            epsilon_high: eps,
            beta: i["beta"].as_f64().unwrap(),
            loss_type: ty,
            max_completion_length: t,
        };
        let want = gr["loss_by_type(scale=group)"][name].as_f64().unwrap();
        let stats = grpo_loss(&logp, &old, Some(&refp), &mask, &adv, t, &s);
        close(stats.loss, want, name);
        close(stats.kl, gr["mean_token_kl_k3"].as_f64().unwrap(), "kl");
        let (per_tok, kl) = grpo_per_token_loss(t2(&logp, b), t2(&old, b), Some(t2(&refp, b)), t2(&adv, b), &s);
        let loss = values(grpo_aggregate(per_tok, t2(&mask, b), ty, t, None))[0];
        close_f32(loss, want, name);
        let kl_mean = values((kl.unwrap() * t2(&mask, b)).sum())[0] / mask.iter().sum::<f64>();
        close_f32(kl_mean, gr["mean_token_kl_k3"].as_f64().unwrap(), "kl");
    }
    // beta = 0 drops the KL term entirely (no reference needed).
    let s0 = GrpoLossSettings {
        epsilon: eps,
        epsilon_high: eps,
        beta: 0.0,
        loss_type: GrpoLossType::Bnpo,
        max_completion_length: t,
    };
    let with_ref = grpo_loss(&logp, &old, Some(&refp), &mask, &adv, t, &s0);
    let without = grpo_loss(&logp, &old, None, &mask, &adv, t, &s0);
    assert_eq!(with_ref.loss, without.loss);
    assert_eq!(without.kl, 0.0);
}

#[test]
fn grpo_tensor_loss_has_gradients_through_logp_only_where_unclipped() {
    // With the ratio far above 1 + eps and a positive advantage, the clipped branch is active: zero gradient.
    let d = rlox_nn::cpu_device().unwrap().autodiff();
    let logp = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, -1.0], [1, 2]), &d).require_grad();
    let old = Tensor::<2>::from_data(TensorData::new(vec![-1.0f32, -1.0], [1, 2]), &d);
    let adv = Tensor::<2>::from_data(TensorData::new(vec![1.0f32], [1, 1]), &d);
    let s = GrpoLossSettings {
        epsilon: 0.2,
        epsilon_high: 0.2,
        beta: 0.0,
        loss_type: GrpoLossType::Bnpo,
        max_completion_length: 2,
    };
    let (pt, _) = grpo_per_token_loss(logp.clone(), old, None, adv, &s);
    let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 1.0], [1, 2]), &d);
    let loss = grpo_aggregate(pt, mask, GrpoLossType::Bnpo, 2, None);
    let grads = loss.backward();
    let g = values(logp.grad(&grads).unwrap());
    assert_eq!(g[0], 0.0, "clipped token has no gradient");
    assert!((g[1] + 0.5).abs() < 1e-6, "unclipped: d(-ratio*A/2)/dlogp = -0.5, got {}", g[1]);
}
