//! Collecting a rollout on the fused path allocates nothing per env step: one forward of each network
//! for the whole env batch, actions sampled into reused buffers, the env batch stepped in place. The
//! allocations of a collection are counted by a global allocator: a few buffers per call, and those of
//! each episode's seeded reset (the env's Gymnasium-compatible seeding, which exact resume needs).

use rlox_core::seeding::rng_from_seed;
use rlox_core::vec_env::VecEnv;
use rlox_deep::fused_policy::FusedActorCritic;
use rlox_deep::gae::RolloutBuffer;
use rlox_deep::rollout::{collect_rollout, EpisodeStats};
use rlox_deep::{ActionKind, ActorCritic, PolicyConfig, ResumableVecEnv};
use rlox_envs::classic_control::CartPole;
use rlox_nn::testing::CountingAllocator;
use rlox_nn::OptimizerConfig;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn collecting_a_rollout_allocates_nothing_per_step() {
    // rlox's own kernels whatever the CPU (on Intel, large products may go to the gemm crate, which
    // allocates its packing buffer; these products are small, but an override must not change that).
    // The only test of this binary: nothing else reads the environment concurrently.
    std::env::set_var("RLOX_MLP_GEMM", "rlox");
    let (n_envs, obs_dim) = (8, 4);
    let kind = ActionKind::Discrete(2);
    let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
    let model = ActorCritic::new(obs_dim, &kind, &PolicyConfig::default(), &device, &mut rng_from_seed(1));
    let mut policy = FusedActorCritic::from_model(&model, OptimizerConfig::adam()).unwrap();
    let mut envs = ResumableVecEnv::new(n_envs, CartPole::new, Some(500)).unwrap();
    envs.reset(Some(0)).unwrap();
    let mut stats = EpisodeStats::new(n_envs);
    let mut rng = rng_from_seed(2);
    // Warm up: over 100 episodes, so that the statistics' window of recent returns is full.
    let mut warm = RolloutBuffer::new(n_envs, 512, obs_dim, 1);
    collect_rollout(&mut policy, &kind, &mut envs, &mut warm, &mut stats, &mut rng).unwrap();
    assert!(stats.episodes > 100, "{} episodes", stats.episodes);
    // Allocations and finished episodes of one collection of `n_steps` calls (after a first one has
    // sized every buffer).
    let mut count = |n_steps: usize| {
        let mut buf = RolloutBuffer::new(n_envs, n_steps, obs_dim, 1);
        collect_rollout(&mut policy, &kind, &mut envs, &mut buf, &mut stats, &mut rng).unwrap();
        let (before, episodes) = (CountingAllocator::count(), stats.episodes);
        collect_rollout(&mut policy, &kind, &mut envs, &mut buf, &mut stats, &mut rng).unwrap();
        (CountingAllocator::count() - before, stats.episodes - episodes)
    };
    for n_steps in [8, 256] {
        let (allocations, episodes) = count(n_steps);
        let steps = n_steps * n_envs;
        eprintln!("{steps} env steps, {episodes} episodes: {allocations} allocations");
        assert!(episodes > 0 || n_steps == 8);
        // At most 8 per call and 3 per seeded reset (measured: 6 and 3); one per step would be 2048 here.
        assert!(
            allocations <= 8 + 3 * episodes as usize,
            "{steps} env steps ({episodes} episodes) allocated {allocations} times"
        );
    }
}
