//! What bots type: the kinds of command, their weights, and a small random generator.

use anyhow::{Context, Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Say,
    Look,
    Move,
    Who,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Say, Kind::Look, Kind::Move, Kind::Who];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Say => "say",
            Kind::Look => "look",
            Kind::Move => "move",
            Kind::Who => "who",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Weights per kind, indexed by `Kind::index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 4],
    total: u32,
}

impl Mix {
    /// `say=50,look=30,move=10,who=10`; kinds left out get weight 0.
    pub fn parse(text: &str) -> Result<Mix> {
        let mut weights = [0u32; 4];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("--mix: {part:?} is not kind=weight"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .with_context(|| format!("--mix: unknown kind {name:?} (say, look, move, who)"))?;
            weights[kind.index()] = weight
                .trim()
                .parse()
                .with_context(|| format!("--mix: weight of {name} is not a whole number"))?;
        }
        let total = weights.iter().try_fold(0u32, |sum, w| sum.checked_add(*w));
        match total {
            Some(total) if total > 0 => Ok(Mix { weights, total }),
            _ => bail!("--mix: weights must add up to something between 1 and 2^32"),
        }
    }

    pub fn pick(&self, rng: &mut Rng) -> Kind {
        let mut roll = (rng.next() % u64::from(self.total)) as u32;
        for kind in Kind::ALL {
            let weight = self.weights[kind.index()];
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        // Unreachable: the roll is below the total of the weights.
        Kind::Say
    }

    pub fn describe(&self) -> String {
        Kind::ALL
            .into_iter()
            .filter(|k| self.weights[k.index()] > 0)
            .map(|k| format!("{}={}", k.name(), self.weights[k.index()]))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// SplitMix64: statistically fine for picking commands and jitter, seedable per session
/// so that runs are reproducible given a run id, and no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_mix() {
        let mix = Mix::parse("say=50,look=30,move=10,who=10").unwrap();
        assert_eq!(mix.weights, [50, 30, 10, 10]);
        assert_eq!(mix.describe(), "say=50,look=30,move=10,who=10");
        assert_eq!(Mix::parse("say=1").unwrap().describe(), "say=1");
    }

    #[test]
    fn rejects_bad_mixes() {
        for bad in [
            "",
            "say",
            "shout=1",
            "say=-1",
            "say=0",
            "say=x",
            "say=4294967295,who=1",
        ] {
            assert!(Mix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::parse("say=50,look=30,move=10,who=10").unwrap();
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[mix.pick(&mut rng).index()] += 1;
        }
        for (count, expected) in counts.iter().zip([50_000, 30_000, 10_000, 10_000]) {
            assert!(count.abs_diff(expected) < 1_000, "{counts:?}");
        }
        let only_say = Mix::parse("say=3").unwrap();
        assert!((0..1000).all(|_| only_say.pick(&mut rng) == Kind::Say));
    }

    #[test]
    fn unit_is_in_range() {
        let mut rng = Rng::new(7);
        assert!(
            (0..10_000)
                .map(|_| rng.unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
