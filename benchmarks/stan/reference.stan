// bonebayes individual hierarchical model (default configuration) written in Stan, for benchmarks.
//
// A line-by-line translation of bonebayes.models.individual (ModelConfig defaults: latent ratio driver,
// alpha = 1, subject random effect on log k_M, hierarchical cohort means, no anabolic coupling) and of the
// closed-form turnover physics in bonebayes.physiology.turnover / simulate. Everything that does not depend on
// parameters (hormone covariates, drug exposures, the segment schedule, observation locations, centring
// choices and prior hyperparameters) is computed by bonebayes in Python and passed as data
// (benchmarks/stan/export.py), so both implementations see identical inputs. Time in months.
//
// States are normalised to the young-adult reference (C = B = 1, m = 0). Over a segment of length h with
// constant stimuli S_R, S_F the exact affine map is
//   C' = e_C C + (1 - e_C) S_R
//   B' = e_B B + S_F (a_B S_R + b_B C)
//   m' = e_L m + k_M (q1 S_R S_F + q2 S_R + q3 B + q4 S_F C + q5 C)        (per site)
// with coefficients from divided differences of exp(-x h) (conv2, conv3), stable at coinciding rates.
functions {
  real phi1(real z) {  // (exp(z) - 1) / z for z <= 0
    if (abs(z) < 1e-6) return 1 + z / 2 + z * z / 6;
    return expm1(z) / z;
  }
  real conv2(real a, real b, real h) {  // (e^{-a h} - e^{-b h}) / (b - a)
    real gap = abs(a - b);
    real lo = 0.5 * (a + b - gap);
    return h * exp(-lo * h) * phi1(-gap * h);
  }
  real conv3(real a, real b, real c, real h) {  // second divided difference of x -> exp(-x h)
    real x1 = fmin(fmin(a, b), c);
    real x3 = fmax(fmax(a, b), c);
    real x2 = a + b + c - x1 - x3;
    real be = (x2 - x1) * h;
    real ga = (x3 - x1) * h;
    real val;
    if (ga < 1e-3) {
      real h1 = be + ga;
      real h2 = be * be + be * ga + ga * ga;
      real h3 = be * h2 + ga * ga * ga;
      val = 0.5 - h1 / 6 + h2 / 24 - h3 / 120;
    } else {
      val = (phi1(-be) - exp(-be) * phi1(-(ga - be))) / ga;
    }
    return h * h * exp(-x1 * h) * val;
  }
  vector coef_cb(real kC, real kB, real h) {  // [e_C, e_B, a_B, b_B]
    real e_C = exp(-kC * h);
    real e_B = exp(-kB * h);
    real b_B = kB * conv2(kC, kB, h);
    return [e_C, e_B, 1 - e_B - b_B, b_B]';
  }
  matrix coef_m(real kC, real kB, vector lam, real h) {  // rows: sites; columns: e_L, q1..q5
    int S = rows(lam);
    matrix[S, 6] q;
    for (s in 1:S) {
      real d0L = conv2(0, lam[s], h);
      real dBL = conv2(kB, lam[s], h);
      real dCL = conv2(kC, lam[s], h);
      real kF = kB * conv3(kC, kB, lam[s], h);
      q[s] = [exp(-lam[s] * h), d0L - dBL - kF, dCL - d0L, dBL, kF, -dCL];
    }
    return q;
  }
  // one step: state = [C, B, m_1..m_S]
  vector step(vector st, real SR, real SF, vector kM, vector cb, matrix q) {
    int S = rows(kM);
    vector[2 + S] out;
    real C = st[1];
    real B = st[2];
    out[1] = cb[1] * C + (1 - cb[1]) * SR;
    out[2] = cb[2] * B + SF * (cb[3] * SR + cb[4] * C);
    for (s in 1:S)
      out[2 + s] = q[s, 1] * st[2 + s]
                   + kM[s] * (q[s, 2] * SR * SF + q[s, 3] * SR + q[s, 4] * B + q[s, 5] * SF * C + q[s, 6] * C);
    return out;
  }
  // stimuli (S_R, S_F) for hormone covariates x, antiresorptive and anabolic exposures
  vector stim(row_vector x, row_vector Ar, row_vector Aa, vector gamma, vector e_form, vector emax_res,
              vector ec50_res, vector emax_ana, vector ec50_ana) {
    real lr = x * gamma;
    real lf = x * e_form;
    for (d in 1:cols(Ar)) lr += log1m(emax_res[d] * Ar[d] / (Ar[d] + ec50_res[d]));
    real ef = 0;
    for (d in 1:cols(Aa)) ef += emax_ana[d] * Aa[d] / (Aa[d] + ec50_ana[d]);
    return [exp(lr), exp(lf) * (1 + ef)]';
  }
}
data {
  int<lower=1> N;            // subjects
  int<lower=1> S;            // BMD sites
  int<lower=0> H;            // active hormones
  int<lower=0> Dr;           // antiresorptive drugs
  int<lower=0> Da;           // anabolic drugs
  int<lower=1> L;            // levels (ctx, p1np, rankl, opg, bmd sites)
  int<lower=1> NC;           // cohorts
  array[N] int<lower=1, upper=NC> cohort_of;
  // history patterns (chained with k_M = 1 from the reference state)
  int<lower=1> Jp;
  int<lower=1> P;
  real<lower=0> hist_step;
  array[Jp, P] row_vector[H] px;
  array[Jp, P] row_vector[Dr] pAr;
  array[Jp, P] row_vector[Da] pAa;
  array[N] int<lower=1, upper=P> unit_pattern;
  array[N] int<lower=1, upper=Jp + 1> unit_node;  // 1-based pattern node reached at t0
  vector<lower=0>[N] unit_tau;
  vector<lower=0>[N] tail_h;
  array[N] row_vector[H] tx;
  array[N] row_vector[Dr] tAr;
  array[N] row_vector[Da] tAa;
  // the window grid
  int<lower=1> J;
  real<lower=0> step_h;
  array[J, N] row_vector[H] wx;
  array[J, N] row_vector[Dr] wAr;
  array[J, N] row_vector[Da] wAa;
  // observations: markers (ctx -> C, p1np -> B; left-censored below LOQ), BMD, serum RANKL/OPG
  int<lower=0> n_mk;
  array[n_mk] int<lower=1, upper=N> mk_unit;
  array[n_mk] int<lower=1, upper=J + 1> mk_node;
  vector<lower=0>[n_mk] mk_tau;
  array[n_mk] int<lower=0, upper=1> mk_isC;
  array[n_mk] int<lower=1, upper=L> mk_level;
  array[n_mk] int<lower=0, upper=1> mk_cens;
  vector[n_mk] mk_y;
  int<lower=0> n_bm;
  array[n_bm] int<lower=1, upper=N> bm_unit;
  array[n_bm] int<lower=1, upper=J + 1> bm_node;
  vector<lower=0>[n_bm] bm_tau;
  array[n_bm] int<lower=1, upper=S> bm_site;
  array[n_bm] int<lower=1, upper=L> bm_level;
  vector[n_bm] bm_y;
  int<lower=0> n_se;
  array[n_se] int<lower=1, upper=N> se_unit;
  array[n_se] int<lower=1, upper=L> se_level;
  array[n_se] int<lower=0, upper=1> se_isR;
  matrix[n_se, H] se_x;
  vector[n_se] se_y;
  // centring choices per level: cohort 0 pooled / 1 non-centred / 2 centred; subject 0 none / 1 nc / 2 c
  int<lower=0, upper=1> hier;                     // hierarchical cohort effects (NC > 1)
  array[L] int<lower=0, upper=2> cohort_mode;
  array[L] int<lower=0, upper=2> subj_mode;
  array[L] int<lower=0> cohort_slot;              // row in cohort_mean / cohort_dev_raw (mode 2) or z_cohort (mode 1)
  array[L] int<lower=0> subj_slot;                // row in a_c (mode 2) or z_subj (mode 1)
  int<lower=0> n_cc;
  int<lower=0> n_cn;
  int<lower=0> n_sc;
  int<lower=0> n_sn;
  // prior hyperparameters (bonebayes.models.priors)
  vector[2] pr_kC;
  vector[2] pr_kB;
  vector[S] pr_kM_mu;
  real pr_kM_sd;
  vector[2] pr_lam;
  vector[H] pr_gamma_mu;
  vector[H] pr_gamma_sd;
  vector[H] pr_eform_mu;
  vector[H] pr_eform_sd;
  vector[H] pr_grankl_mu;
  vector[H] pr_grankl_sd;
  vector[H] pr_gopg_mu;
  vector[H] pr_gopg_sd;
  vector[2] pr_emax_res;   // beta
  vector[2] pr_ec50_res;   // lognormal
  vector[2] pr_eref_ana;   // lognormal
  vector[2] pr_ec50_ana;   // lognormal
  vector[L] pr_mu_loc;
  vector[L] pr_mu_sd;
  array[L] int<lower=2, upper=3> pr_sig_dist;   // 2 lognormal, 3 halfnormal
  vector[L] pr_sig_a;
  vector[L] pr_sig_b;
  real pr_tau_cohort_shape;
  real pr_tau_cohort_rate;
  vector[L] pr_tau_subject;
  real pr_tau_kM;
}
parameters {
  real<lower=0> k_C;
  real<lower=0> k_B;
  vector<lower=0>[S] k_M;
  vector<lower=0>[S] lam;
  vector[H] gamma;
  vector[H] e_form;
  vector[H] g_rankl;
  vector[H] g_opg;
  vector<lower=0, upper=1>[Dr] emax_res;
  vector<lower=0>[Dr] ec50_res;
  vector<lower=0>[Da] eref_ana;
  vector<lower=0>[Da] ec50_ana;
  vector[hier ? 0 : L] mu_free;       // population means (no cohort hierarchy)
  vector[hier ? L : 0] z_mu;          // population means given the cohorts, non-centred (hierarchy)
  vector<lower=0>[L] sigma;
  vector<lower=0>[hier ? L : 0] tau_cohort;
  vector[n_cc] cohort_mean;           // mean of the cohort means (data-rich levels)
  matrix[n_cc, NC - 1] cohort_dev_raw;  // zero-sum deviations: the last is minus the sum of the others
  matrix[n_cn, NC] z_cohort;
  vector<lower=0>[L] tau_subject;
  matrix[n_sc, N] a_c;
  matrix[n_sn, N] z_subj;
  real<lower=0> tau_kM;
  vector[N] z_kM;
}
transformed parameters {
  vector[Da] emax_ana = eref_ana .* (1 + ec50_ana);
  // population and cohort means (models.individual._hierarchical_levels): for a data-rich level
  // c_bar ~ N(m0, sqrt(s0^2 + tau^2/NC)), c - c_bar ~ ZeroSumNormal(tau), mu | c_bar ~ N(post mean, post SD)
  vector[L] mu_level;
  matrix[NC, L] level_mean;
  for (k in 1:L) {
    if (!hier) {
      mu_level[k] = mu_free[k];
      level_mean[:, k] = rep_vector(mu_free[k], NC);
    } else if (cohort_mode[k] == 2) {
      real s02 = square(pr_mu_sd[k]);
      real vb = square(tau_cohort[k]) / NC;
      mu_level[k] = (pr_mu_loc[k] * vb + cohort_mean[cohort_slot[k]] * s02) / (s02 + vb)
                    + pr_mu_sd[k] * sqrt(vb / (s02 + vb)) * z_mu[k];
      level_mean[:, k] = cohort_mean[cohort_slot[k]]
                         + append_col(cohort_dev_raw[cohort_slot[k]], -sum(cohort_dev_raw[cohort_slot[k]]))';
    } else {
      mu_level[k] = pr_mu_loc[k] + pr_mu_sd[k] * z_mu[k];
      level_mean[:, k] = mu_level[k] + tau_cohort[k] * z_cohort[cohort_slot[k]]';
    }
  }
}
model {
  // ---- priors
  k_C ~ lognormal(pr_kC[1], pr_kC[2]);
  k_B ~ lognormal(pr_kB[1], pr_kB[2]);
  k_M ~ lognormal(pr_kM_mu, pr_kM_sd);
  lam ~ lognormal(pr_lam[1], pr_lam[2]);
  gamma ~ normal(pr_gamma_mu, pr_gamma_sd);
  e_form ~ normal(pr_eform_mu, pr_eform_sd);
  g_rankl ~ normal(pr_grankl_mu, pr_grankl_sd);
  g_opg ~ normal(pr_gopg_mu, pr_gopg_sd);
  emax_res ~ beta(pr_emax_res[1], pr_emax_res[2]);
  ec50_res ~ lognormal(pr_ec50_res[1], pr_ec50_res[2]);
  eref_ana ~ lognormal(pr_eref_ana[1], pr_eref_ana[2]);
  ec50_ana ~ lognormal(pr_ec50_ana[1], pr_ec50_ana[2]);
  if (hier) z_mu ~ std_normal();
  else mu_free ~ normal(pr_mu_loc, pr_mu_sd);
  for (k in 1:L) {
    if (pr_sig_dist[k] == 2) sigma[k] ~ lognormal(pr_sig_a[k], pr_sig_b[k]);
    else sigma[k] ~ normal(0, pr_sig_a[k]);
  }
  if (hier) tau_cohort ~ gamma(pr_tau_cohort_shape, pr_tau_cohort_rate);
  tau_subject ~ normal(0, pr_tau_subject);
  tau_kM ~ normal(0, pr_tau_kM);
  z_kM ~ std_normal();
  to_vector(z_cohort) ~ std_normal();
  to_vector(z_subj) ~ std_normal();

  // ---- levels: cohort means (transformed parameters) and subject intercepts
  for (k in 1:L) {
    if (hier && cohort_mode[k] == 2) {
      int c = cohort_slot[k];
      cohort_mean[c] ~ normal(pr_mu_loc[k], sqrt(square(pr_mu_sd[k]) + square(tau_cohort[k]) / NC));
      // ZeroSumNormal(tau) on NC - 1 free coordinates: NC squares, NC - 1 degrees of freedom
      row_vector[NC] dev = append_col(cohort_dev_raw[c], -sum(cohort_dev_raw[c]));
      target += -0.5 * dot_self(dev / tau_cohort[k]) - (NC - 1) * log(tau_cohort[k]);
    }
  }
  matrix[N, L] icpt;
  for (k in 1:L) {
    vector[N] base = level_mean[cohort_of, k];
    if (subj_mode[k] == 2) {
      a_c[subj_slot[k]]' ~ normal(base, tau_subject[k]);
      icpt[:, k] = a_c[subj_slot[k]]';
    } else if (subj_mode[k] == 1) {
      icpt[:, k] = base + tau_subject[k] * z_subj[subj_slot[k]]';
    } else {
      icpt[:, k] = base;
    }
  }

  // ---- physiology: history patterns (k_M = 1), tails, window
  {
    vector[2 + S] ones_m = append_row([1, 1]', rep_vector(0, S));
    vector[S] one_kM = rep_vector(1, S);
    vector[4] cb_h = coef_cb(k_C, k_B, hist_step);
    matrix[S, 6] q_h = coef_m(k_C, k_B, lam, hist_step);
    array[Jp + 1, P] vector[2 + S] pat;
    array[Jp, P] vector[2] pstim;
    for (p in 1:P) {
      pat[1, p] = ones_m;
      for (j in 1:Jp) {
        pstim[j, p] = stim(px[j, p], pAr[j, p], pAa[j, p], gamma, e_form, emax_res, ec50_res, emax_ana,
                           ec50_ana);
        pat[j + 1, p] = step(pat[j, p], pstim[j, p][1], pstim[j, p][2], one_kM, cb_h, q_h);
      }
    }
    vector[4] cb_w = coef_cb(k_C, k_B, step_h);
    matrix[S, 6] q_w = coef_m(k_C, k_B, lam, step_h);
    array[J + 1, N] vector[2 + S] win;
    array[J, N] vector[2] wstim;
    array[N] vector[S] kM_i;
    for (i in 1:N) {
      kM_i[i] = k_M * exp(tau_kM * z_kM[i]);
      vector[2 + S] st = pat[unit_node[i], unit_pattern[i]];
      st[3:(2 + S)] = kM_i[i] .* st[3:(2 + S)];
      if (unit_tau[i] > 0) {
        int seg = min(unit_node[i], Jp);
        st = step(st, pstim[seg, unit_pattern[i]][1], pstim[seg, unit_pattern[i]][2], kM_i[i],
                  coef_cb(k_C, k_B, unit_tau[i]), coef_m(k_C, k_B, lam, unit_tau[i]));
      }
      if (tail_h[i] > 0) {
        vector[2] ts = stim(tx[i], tAr[i], tAa[i], gamma, e_form, emax_res, ec50_res, emax_ana, ec50_ana);
        st = step(st, ts[1], ts[2], kM_i[i], coef_cb(k_C, k_B, tail_h[i]), coef_m(k_C, k_B, lam, tail_h[i]));
      }
      win[1, i] = st;
      for (j in 1:J) {
        wstim[j, i] = stim(wx[j, i], wAr[j, i], wAa[j, i], gamma, e_form, emax_res, ec50_res, emax_ana,
                           ec50_ana);
        win[j + 1, i] = step(win[j, i], wstim[j, i][1], wstim[j, i][2], kM_i[i], cb_w, q_w);
      }
    }

    // ---- likelihoods
    if (n_mk > 0) {
      vector[n_mk] mu;
      vector[n_mk] sd_mk;
      for (n in 1:n_mk) {
        int i = mk_unit[n];
        vector[2 + S] st = win[mk_node[n], i];
        if (mk_tau[n] > 0) {
          int seg = min(mk_node[n], J);
          st = step(st, wstim[seg, i][1], wstim[seg, i][2], kM_i[i], coef_cb(k_C, k_B, mk_tau[n]),
                    coef_m(k_C, k_B, lam, mk_tau[n]));
        }
        mu[n] = icpt[i, mk_level[n]] + (mk_isC[n] ? log(st[1]) - log(win[1, i][1])
                                                   : log(st[2]) - log(win[1, i][2]));
        sd_mk[n] = sigma[mk_level[n]];
      }
      for (n in 1:n_mk) {
        if (mk_cens[n]) target += normal_lcdf(mk_y[n] | mu[n], sd_mk[n]);
        else target += normal_lpdf(mk_y[n] | mu[n], sd_mk[n]);
      }
    }
    if (n_bm > 0) {
      vector[n_bm] mu;
      for (n in 1:n_bm) {
        int i = bm_unit[n];
        vector[2 + S] st = win[bm_node[n], i];
        if (bm_tau[n] > 0) {
          int seg = min(bm_node[n], J);
          st = step(st, wstim[seg, i][1], wstim[seg, i][2], kM_i[i], coef_cb(k_C, k_B, bm_tau[n]),
                    coef_m(k_C, k_B, lam, bm_tau[n]));
        }
        mu[n] = icpt[i, bm_level[n]] + st[2 + bm_site[n]] - win[1, i][2 + bm_site[n]];
      }
      target += normal_lpdf(bm_y | mu, sigma[bm_level]);
    }
  }
  if (n_se > 0) {
    vector[n_se] mu;
    for (n in 1:n_se) {
      real lin = H > 0 ? (se_isR[n] ? se_x[n] * g_rankl : se_x[n] * g_opg) : 0.0;
      mu[n] = icpt[se_unit[n], se_level[n]] + lin;
    }
    target += normal_lpdf(se_y | mu, sigma[se_level]);
  }
}
