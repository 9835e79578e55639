//! rlox's NumPy stream against NumPy 2.4 itself (`fixtures/numpy_random.json`, written by
//! `tools/numpy_random_fixture.py`): `SeedSequence`, `PCG64`, `Generator.random/uniform/integers/
//! choice` and Gymnasium's `categorical_sample`, bit for bit, for fourteen seeds from 0 to 3^200.

use rlox_core::seeding::{
    categorical_sample, categorical_sample_cumulative, check_seed, np_random, np_random_from_int_limbs, Generator,
    Pcg64State, SeedSequence,
};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/numpy_random.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn f64_from_hex(s: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(s.as_str().unwrap(), 16).unwrap())
}

fn u128_from_hex(s: &Value) -> u128 {
    u128::from_str_radix(s.as_str().unwrap(), 16).unwrap()
}

fn limbs(rec: &Value) -> Vec<u64> {
    rec["limbs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().parse().unwrap()).collect()
}

fn generator(rec: &Value) -> Generator {
    np_random_from_int_limbs(&limbs(rec)).0
}

#[test]
fn seed_sequence_and_pcg64_state_match_numpy() {
    let doc = fixture();
    for rec in doc["seeds"].as_array().unwrap() {
        let seed = rec["seed"].as_str().unwrap();
        let seq = SeedSequence::from_int_limbs(&limbs(rec));
        let want: Vec<u32> =
            rec["generate_state_u32"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap() as u32).collect();
        assert_eq!(seq.generate_state_u32(8), want, "seed {seed}: generate_state");
        let st = generator(rec).state();
        assert_eq!(st.state, u128_from_hex(&rec["pcg64_state"]), "seed {seed}: PCG64 state");
        assert_eq!(st.inc, u128_from_hex(&rec["pcg64_inc"]), "seed {seed}: PCG64 inc");
        assert!(!st.has_uint32 && st.uinteger == 0);
        if let Ok(s) = seed.parse::<u64>() {
            assert_eq!(Generator::new(s), generator(rec), "seed {seed}: u64 and limb constructors agree");
            assert_eq!(np_random(Some(s)).0, generator(rec));
        }
    }
    // More than four entropy words (3^200 has ten) go through NumPy's extra mixing loop.
    assert!(doc["seeds"].as_array().unwrap().iter().any(|r| limbs(r).len() > 2));
}

#[test]
fn raw_draws_doubles_and_uniforms_match_numpy() {
    for rec in fixture()["seeds"].as_array().unwrap() {
        let seed = rec["seed"].as_str().unwrap();
        let mut g = generator(rec);
        for (i, want) in rec["next_u64"].as_array().unwrap().iter().enumerate() {
            let want = u64::from_str_radix(want.as_str().unwrap(), 16).unwrap();
            assert_eq!(g.bits_mut().next_u64(), want, "seed {seed}: raw draw {i}");
        }
        let mut g = generator(rec);
        for (i, want) in rec["random"].as_array().unwrap().iter().enumerate() {
            assert_eq!(g.random().to_bits(), f64_from_hex(want).to_bits(), "seed {seed}: random() {i}");
        }
        let mut g = generator(rec);
        let mut cart = [0.0; 4];
        g.uniform_fill(-0.05, 0.05, &mut cart);
        let want: Vec<f64> = rec["uniform_cartpole"].as_array().unwrap().iter().map(f64_from_hex).collect();
        assert_eq!(
            cart.map(f64::to_bits).to_vec(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "seed {seed}"
        );
        assert_eq!(g.uniform(-0.6, -0.4).to_bits(), f64_from_hex(&rec["uniform_mountain_car"]).to_bits());
        let pend = rec["uniform_pendulum"].as_array().unwrap();
        let pi = std::f64::consts::PI;
        assert_eq!(g.uniform(-pi, pi).to_bits(), f64_from_hex(&pend[0]).to_bits());
        assert_eq!(g.uniform(-1.0, 1.0).to_bits(), f64_from_hex(&pend[1]).to_bits());
    }
}

#[test]
fn bounded_integers_and_their_32_bit_buffer_match_numpy() {
    for rec in fixture()["seeds"].as_array().unwrap() {
        let seed = rec["seed"].as_str().unwrap();
        let mut g = generator(rec);
        for (i, m) in rec["mixed"].as_array().unwrap().iter().enumerate() {
            let m = m.as_array().unwrap();
            match m[0].as_str().unwrap() {
                "double" => assert_eq!(g.random().to_bits(), f64_from_hex(&m[3]).to_bits(), "seed {seed} draw {i}"),
                "choice3" => {
                    let items = [0, 1, 3];
                    let want: i64 = m[3].as_str().unwrap().parse().unwrap();
                    assert_eq!(items[g.choice_index(3)], want, "seed {seed} draw {i}: choice");
                }
                _ => {
                    let lo: i64 = m[1].as_str().unwrap().parse().unwrap();
                    let hi: i64 = m[2].as_str().unwrap().parse().unwrap();
                    let want: i64 = m[3].as_str().unwrap().parse().unwrap();
                    assert_eq!(g.integers(lo, hi).unwrap(), want, "seed {seed} draw {i}: integers({lo}, {hi})");
                }
            }
        }
        let end = &rec["mixed_end_state"];
        let st: Pcg64State = g.state();
        assert_eq!(st.state, u128_from_hex(&end["state"]), "seed {seed}: state after the mixed draws");
        assert_eq!(st.has_uint32 as u64, end["has_uint32"].as_u64().unwrap(), "seed {seed}: buffered half");
        assert_eq!(st.uinteger as u64, end["uinteger"].as_u64().unwrap(), "seed {seed}: buffered value");
    }
    assert!(Generator::new(0).integers(3, 3).is_err(), "an empty range is an error, as in NumPy");
}

#[test]
fn categorical_sample_matches_gymnasium() {
    let doc = fixture();
    let support: Vec<usize> =
        doc["taxi_like_support"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let mut taxi_like = vec![0.0; 500];
    for &i in &support {
        taxi_like[i] = 1.0;
    }
    let total: f64 = taxi_like.iter().sum();
    taxi_like.iter_mut().for_each(|p| *p /= total);
    let rows: Vec<Vec<f64>> = vec![
        vec![0.33333333333333337, 0.3333333333333333, 0.33333333333333337],
        vec![1.0],
        vec![0.1, 0.0, 0.2, 0.7],
        taxi_like,
    ];
    for rec in doc["seeds"].as_array().unwrap() {
        let seed = rec["seed"].as_str().unwrap();
        let mut g = generator(rec);
        let mut h = generator(rec);
        for (row, want) in rows.iter().zip(rec["categorical"].as_array().unwrap()) {
            let cumulative: Vec<f64> = row
                .iter()
                .scan(0.0, |c, p| {
                    *c += p;
                    Some(*c)
                })
                .collect();
            for (k, w) in want.as_array().unwrap().iter().enumerate() {
                let w = w.as_u64().unwrap() as usize;
                assert_eq!(categorical_sample(row, &mut g), w, "seed {seed}: row of {} draw {k}", row.len());
                assert_eq!(categorical_sample_cumulative(&cumulative, &mut h), w, "seed {seed}: bisection");
            }
        }
    }
}

#[test]
fn seeds_are_checked_as_gymnasium_checks_them() {
    let doc = fixture();
    let err = check_seed(-1).unwrap_err().to_string();
    let want = doc["bad_seed_errors"]["-1"].as_str().unwrap();
    assert!(err.ends_with(want), "{err:?} should end with Gymnasium's {want:?}");
    assert_eq!(check_seed(0).unwrap(), 0);
    assert_eq!(check_seed(i128::MAX).unwrap(), i128::MAX as u128);
    // No seed: fresh entropy, so two generators differ (128 random bits collide with probability 2^-128).
    let (a, sa) = np_random(None);
    let (b, sb) = np_random(None);
    assert_ne!(a, b);
    assert_ne!(sa.entropy(), sb.entropy());
    // The entropy reproduces the generator, as Gymnasium's returned np_seed does.
    let again = Generator::from_seed_sequence(&SeedSequence::from_u128(sa.entropy_u128().unwrap()));
    assert_eq!(again, a);
}
