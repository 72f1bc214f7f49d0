// bn_moments — (count, mean, M2 = sum of squared deviations) of a set of values, per channel
// (VT lanes), and Chan et al.'s pairwise merge of two such sets:
//   n = na + nb; d = mb - ma; mean = ma + d * nb / n; M2 = M2a + M2b + d^2 * na * nb / n
// which, unlike sum/sumsq, does not lose the variance when |mean| >> std. Merging into the empty
// set gives (nb, mb, M2b) exactly; an empty set (nb = 0) changes nothing. Included by
// bn_stats.wgsl and bn_relu_apply.wgsl, after the `alias VT` the programs prepend.

struct Moments {
  n : f32,
  mean : VT,
  m2 : VT,
}

fn emptyMoments() -> Moments {
  return Moments(0.0, VT(0.0), VT(0.0));
}

fn mergeMoments(a : Moments, nb : f32, mb : VT, m2b : VT) -> Moments {
  if (nb == 0.0) {
    return a;
  }
  let n = a.n + nb;
  let d = mb - a.mean;
  return Moments(n, a.mean + d * (nb / n), a.m2 + m2b + d * d * (a.n * nb / n));
}
