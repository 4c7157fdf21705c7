"""Spin and Zeeman quantum geometry of 003 (numba kernel), one call per chunk of k-points.

Pure functions of a chunk's compact Hamiltonian derivatives ``Hu`` (N, U, n, n) (H, ∂H, ∂²H in their
distinct slots, see ``models/derivatives.py``; third-order slots, if present, are not read) and of the
model's k-independent spin operator ``spin`` (3, n, n) = (σ^x, σ^y, σ^z); no I/O, no Dask.

Conventions (CATALOG; ħ absorbed, e = ħ = 1 as in 003). In the eigenbasis of H(k):
  V^a = U†∂_aH U,  W^{ab} = U†∂_a∂_bH U,  Σ^c = U†σ^c U,  S^{a;c} = U†¼{∂_aH, σ^c}U = ¼(V^aΣ^c + Σ^cV^a)
  (the spin-current operator v^{a;c} of 003 with v^a = ∂_aH), ε_nm = ε_n − ε_m, x_nm = 1/ε_nm,
  A^a_nm = i V^a_nm/(ε_m − ε_n) = −i V^a_nm x_nm (003's r^a_nm), for m ∉ D(n).
Degenerate groups D(n) (|ε_n − ε_m| < threshold, consecutive in the sorted spectrum) as in ``kernels.py``:
interband sums run over m ∉ D(n), and a band's value is its group's trace divided by the group size, so
that band sums are U(N)-invariant group traces. Products X_nm Δ^d_mn = X_nm ∂_dε_mn are taken as group blocks,
Σ_{n∈D} X_nm ∂_dε_n → Tr_D[V^d_DD X_{D,m}] (degenerate perturbation theory: exact also where a group splits
linearly, e.g. at the TRIM of crystals without inversion; see ``kernels.py``). The diagonal spin
elements in Δ̄ (Eq. 13–14) are taken as the group blocks (see ``*_nonlinear_sea``).

Axis layout: k first, then band (pair fields: band n, band m), then Cartesian indices in the order of the
formula's superscripts with the k-derivative index last among them, then the spin component (x, y, z) last.
"x_gap", "bcp" etc. name the energy weight of the m-sum. Fields (per k, per band):

  spin_expectation        (N,n,3)        [c]          σ^c_nn                                  003 Eq. 3, 5 (FS form, fn. 82), 10
  spin_velocity           (N,n,d,3)      [a,c]        v^{a;c}_nn = S^{a;c}_nn                 003 Eq. 2, 4 (FS form), 13 (Δ̄)
  spin_velocity_derivative(N,n,d,d,3)    [a,b,c]      ∂_b v^{a;c}_nn = ¼{W^{ab},Σ^c}_nn + 2 spin_qgt_metric_x_gap
                                                       (exact; fn. 80/82: Eq. 4 by parts = τ∫∂_b f v^{a;c}_nn + τ∫ f ¼{W^{ab},Σ^c}_nn)
  spin_qgt_metric         (N,n,d,d,3)    [a,b,c]      g^{ab;c}_n = Σ_m Re S^{a;c}_nm V^b_mn x²      003 Eq. 2 (Table I)
  spin_qgt_curvature      (N,n,d,d,3)    [a,b,c]      Ω^{ab;c}_n = Σ_m −2 Im S^{a;c}_nm V^b_mn x²   003 Eq. 2; σ^{(0)}_{ab;c} Eq. 6 (Σ∫ f Ω),
                                                                                                    σ^{(1)}_{abd;c} Eq. 11 (τΣ∫ Ω ∂_d f)
  zeeman_qgt_metric       (N,n,d,3)      [a,b]        ḡ^{ab}_n = Σ_m Re A^a_nm σ^b_mn = Σ_m Im V^a_nm Σ^b_mn x   003 Eq. 3 (b = spin)
  zeeman_qgt_curvature    (N,n,d,3)      [a,b]        Ω̄^{ab}_n = Σ_m −2 Im A^a_nm σ^b_mn = Σ_m 2 Re V^a_nm Σ^b_mn x
                                                       = ∂_a σ^b_nn (fn. 82);  β^{(1)}_{ba} Eq. 5 (−τ/2 Σ∫ f Ω̄^{ab}),
                                                       β^{(2)}_{bac} Eq. 10 (−τ²/4 Σ∫ Ω̄^{ab} ∂_c f)
  spin_qgt_metric_x_gap   (N,n,d,d,3)    [a,b,c]      Σ_m ε_nm g^{ab;c}_nm = Σ_m Re S^{a;c}_nm V^b_mn x
                                                       σ^{(1)}_{ab;c} Eq. 4 (−2τ Σ∫ f ·), σ^{(2)}_{abd;c} Eq. 9 (−τ² Σ∫ · ∂_d f)
  spin_bcp                (N,n,d,d,3)    [a,d,c]      2 Σ_m g^{ad;c}_nm/ε_nm ("spin BCP", 003 after Eq. 14)
                                                       σ^{(0)}_{abd;c} Eq. 13, Fermi-surface term Σ∫ spin_bcp[a,d,c] ∂_b f
  zeeman_bcp              (N,n,d,3)      [b,a]        2 Σ_m ḡ^{ba}_nm/ε_nm ("anomalous spin polarizability", 003 after Eq. 12)
                                                       β^{(0)}_{ab} Eq. 6 (Σ∫ f ·/2), β^{(1)}_{abc} Eq. 12 (τ Σ∫ ·/2 ∂_c f)
  zeeman_hspace_bcp       (N,n,d,3)      [c,a]        2 Σ_m Ω̄^{ca}_nm/ε²_nm ("h-space BCP", 003 after Eq. 14)
                                                       β^{(0)}_{abc} Eq. 14, Fermi-surface term Σ∫ ·/4 ∂_b f
  spin_nonlinear_sea      (N,n,d,d,d,3)  [a,b,d,c]    Σ_m Q^{abd;c}_nm/ε²_nm,  Q = 2Δ^d_mn g^{ab;c}_nm + Δ̄^{a;c}_mn g^{bd}_nm
                                                       σ^{(0)}_{abd;c} Eq. 13, Fermi-sea term Σ∫ f ·
  zeeman_nonlinear_sea    (N,n,d,d,3)    [b,c,a]      Σ_m Z^{abc}_nm/ε³_nm,    Z = Δ^c_mn Ω̄^{ba}_nm/2 + Δ̄^a_mn ε_nm g^{bc}_nm
                                                       β^{(0)}_{abc} Eq. 14, Fermi-sea term Σ∫ f ·
    with Δ^d_mn = v^d_m − v^d_n, Δ̄^{a;c}_mn = v^{a;c}_mm − v^{a;c}_nn, Δ̄^a_mn = (σ^a_mm − σ^a_nn)/2,
    g^{bd}_nm = Re A^b_nm A^d_mn (003 definitions under Eq. 14). For degenerate groups the diagonal
    elements in Δ̄ become group blocks: Σ_{m∈D'} O_mm X_nm → Tr[P_D' O P_D' …] (O = S^{a;c} or σ^a/2), i.e.
    Σ_{n∈D,m∈D'} Δ̄_mn Re V^b_nm V^d_mn = Re Tr[P_D V^b P_D' O P_D' V^d] − Re Tr[P_D O P_D V^b P_D' V^d]
    (all processes between the two levels; the paper's formula for simple bands; gauge invariant).

Dipoles (``dipoles=True``; exact k-derivatives by the covariant matrix-element derivative below; the
derivative index e is the last Cartesian index). They are the k-derivatives of the Fermi-surface integrands
of Eq. 9–14, for the equivalent Fermi-sea forms (∫ X ∂_e f = −∫ f ∂_e X on a periodic zone) and cross-checks:
  spin_qgt_metric_x_gap_dipole (N,n,d,d,d,3) [a,b,e,c]  ∂_e spin_qgt_metric_x_gap   (Eq. 9, "spin QMD")
  spin_qgt_curvature_dipole    (N,n,d,d,d,3) [a,b,e,c]  ∂_e spin_qgt_curvature      (Eq. 11, "spin BCD")
  spin_bcp_dipole              (N,n,d,d,d,3) [a,d,e,c]  ∂_e spin_bcp                (Eq. 13)
  zeeman_qgt_curvature_dipole  (N,n,d,d,3)   [a,e,b]    ∂_e zeeman_qgt_curvature = ∂_a∂_e σ^b_nn (Eq. 10, "Zeeman BCD")
  zeeman_bcp_dipole            (N,n,d,d,3)   [b,e,a]    ∂_e zeeman_bcp              (Eq. 12, "Zeeman QMD")
  zeeman_hspace_bcp_dipole     (N,n,d,d,3)   [c,e,a]    ∂_e zeeman_hspace_bcp       (Eq. 14)
Method: d/dk of Σ_{n∈D, m∉D} Y_nm Z_mn x^p (Y, Z ∈ {S, V, Σ}) with
  ∂_e O_nm = (∂_eO)_nm + Σ_{l∉D(n)} V^e_nl O_lm x_nl + Σ_{l∉D(m)} O_nl V^e_lm x_ml
  (∂_eV^a = W^{ae}, ∂_eΣ^c = 0, ∂_eS^{a;c} = ¼{W^{ae}, Σ^c}; the intra-group connection terms cancel in the
  group trace) and ∂_e x^p_nm = −p (v̄^e_n − v̄^e_m) x^{p+1}_nm (group-averaged velocities v̄).

Pair-resolved ("local", 003 Eq. 2–3 before the m-sum; ``pairs=True``; for the ω-dependent Eq. 7–8, whose
weights λ^{nm}_{1,2}(ω) are not powers of ε_nm). [n, m, …] holds the D(n)×D(m) block trace divided by
|D(n)||D(m)| (zero for m ∈ D(n)), so Σ_m pair[n, m] is the band field:
  spin_qgt_metric_pair (N,n,n,d,d,3), spin_qgt_curvature_pair (N,n,n,d,d,3),
  zeeman_qgt_metric_pair (N,n,n,d,3), zeeman_qgt_curvature_pair (N,n,n,d,3)   [n, m, a, b(, c)]
  Eq. 7: σ^{(0)}_{ab;c}(ω) = Σ∫ f_n Σ_m (λ1^{nm} Ω^{ab;c}_nm + 2λ2^{nm} g^{ab;c}_nm);
  Eq. 8: β^{(0)}_{ab}(ω) = Σ∫ f_n Σ_m (λ1^{nm} ḡ^{ba}_nm + λ2^{nm} Ω̄^{ba}_nm/2)/ε_nm, with ε_nm from ``energy``.

Spin-polarized limit (003 fn. 72): for σ^c = s_c·1, S^{a;c} = (s_c/2) V^a, so the spin QGT is (s_c/2) × the
conventional QGT (s_c/2 = the spin projection in units of ħ) and the Zeeman QGT vanishes.

Notes on 003 (besides AMBIGUITIES 003): fn. 80 writes v^{ab;c}_nn = <{∂_a∂_bH, σ^c}>_nn/2, but ∂_b of the
spin-current operator ¼{v^a, σ^c} gives ¼<{∂_a∂_bH, σ^c}>_nn (used here, checked by finite differences);
fn. 82's Σ_m 2ε_nm g^{ab;c}_nm = ∂_b v^{a;c}_nn holds up to that term. "Zeeman BCD v^c_n Ω̄^{ba}_mn" after Eq. 10
should read Ω̄^{ba}_nm (Ω̄_mn = −Ω̄_nm), and "spin BCD v^d_n Ω̄^{ab;c}_nm" after Eq. 11 should read Ω^{ab;c}_nm.
fn. 86 pairs the replacements the wrong way round: Eq. 13 contains {v̂^a, σ̂^c}/4 and Eq. 14 contains σ̂^a/2
(Δ̄^a = (σ^a_mm − σ^a_nn)/2); with {v,σ}/4 → v in Eq. 13 and σ/2 → v in Eq. 14 both Q and Z become
2Δ g + Δ g, the two-band intrinsic charge form.
With the Wannier position operator: ``spin_fields_position`` runs this kernel with the full velocity
𝒱^a = ∂_aH − i[A^W_a, H] in the velocity slots (vertex ¼{𝒱^a, σ^c}, connection 𝒜 = Ā − iV̂); ∂_b v^{a;c}_nn and
the spin dipoles by batched NumPy with the plain-V derivative of matrix elements; the Zeeman fields come back as
NaN (docs/spin-position-operator.md).
Cost: O((d²·3)·n³) per k for the band fields, O(d³·3·n³) with dipoles; memory O(d³·3·n²) per thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from qgtflow.geometry.eigh import eigh_small_ws
from qgtflow.geometry.groups import group_labels
from qgtflow.geometry.kernels import _avg2, _groups, _random_gauge, _rotate, block_count
from qgtflow.models.derivatives import index_maps, unique_multi_indices

# name: (dims after kpoint, energy power, length power, long name, formula) in model units (e = ħ = 1)
SPIN_FIELD_INFO = {
    "spin_expectation": (("band", "spin"), 0, 0, "spin expectation σ^c_nn",
                         "<u_n|σ^c|u_n> (group average); 003 Eq. 5, 10 Fermi-surface forms (fn. 82)"),
    "spin_velocity": (("band", "i", "spin"), 1, 1, "spin-current expectation v^{a;c}_nn",
                      "<u_n|¼{v^a, σ^c}|u_n>, v^a = ∂_aH − i[A^W_a, H] (∂_aH without a position operator); "
                      "003 Eq. 2, 4, 13"),
    "spin_velocity_derivative": (("band", "i", "j", "spin"), 1, 2, "k-derivative of the spin-current expectation",
                                 "exact ∂_b v^{a;c}_nn (= ¼<{∂_a∂_bH, σ^c}>_nn + 2 Σ_m ε_nm g^{ab;c}_nm without a "
                                 "position operator); 003 fn. 80, 82"),
    "spin_qgt_metric": (("band", "i", "j", "spin"), 0, 2, "spin quantum metric g^{ab;c}_n",
                        "Σ_m Re v^{a;c}_nm v^b_mn / ε_nm²; 003 Eq. 2"),
    "spin_qgt_curvature": (("band", "i", "j", "spin"), 0, 2, "spin Berry curvature Ω^{ab;c}_n",
                           "Σ_m −2 Im v^{a;c}_nm v^b_mn / ε_nm²; 003 Eq. 2, 6, 11"),
    "zeeman_qgt_metric": (("band", "i", "spin"), 0, 1, "Zeeman quantum metric ḡ^{ab}_n",
                          "Σ_m Re r^a_nm σ^b_mn; 003 Eq. 3"),
    "zeeman_qgt_curvature": (("band", "i", "spin"), 0, 1, "Zeeman Berry curvature Ω̄^{ab}_n",
                             "Σ_m −2 Im r^a_nm σ^b_mn = ∂_a σ^b_nn; 003 Eq. 3, 5, 10, fn. 82"),
    "spin_qgt_metric_x_gap": (("band", "i", "j", "spin"), 1, 2, "gap-weighted spin quantum metric",
                              "Σ_m ε_nm g^{ab;c}_nm; 003 Eq. 4, 9"),
    "spin_bcp": (("band", "i", "j", "spin"), -1, 2, "spin Berry connection polarizability",
                 "2 Σ_m g^{ad;c}_nm / ε_nm; 003 Eq. 13"),
    "zeeman_bcp": (("band", "i", "spin"), -1, 1, "anomalous spin polarizability",
                   "2 Σ_m ḡ^{ba}_nm / ε_nm; 003 Eq. 6, 12"),
    "zeeman_hspace_bcp": (("band", "i", "spin"), -2, 1, "h-space Berry connection polarizability",
                          "2 Σ_m Ω̄^{ca}_nm / ε_nm²; 003 Eq. 14"),
    "spin_nonlinear_sea": (("band", "i", "j", "k", "spin"), -1, 3, "Fermi-sea integrand of 003 Eq. 13",
                           "Σ_m Q^{abd;c}_nm / ε_nm², Q = 2Δ^d_mn g^{ab;c}_nm + Δ̄^{a;c}_mn g^{bd}_nm; 003 Eq. 13"),
    "zeeman_nonlinear_sea": (("band", "i", "j", "spin"), -2, 2, "Fermi-sea integrand of 003 Eq. 14",
                             "Σ_m Z^{abc}_nm / ε_nm³, Z = Δ^c_mn Ω̄^{ba}_nm/2 + Δ̄^a_mn ε_nm g^{bc}_nm; 003 Eq. 14"),
}
SPIN_DIPOLE_INFO = {
    "spin_qgt_metric_x_gap_dipole": (("band", "i", "j", "k", "spin"), 1, 3, "dipole of the gap-weighted spin metric",
                                     "exact ∂_e Σ_m ε_nm g^{ab;c}_nm; 003 Eq. 9"),
    "spin_qgt_curvature_dipole": (("band", "i", "j", "k", "spin"), 0, 3, "spin Berry curvature dipole density",
                                  "exact ∂_e Ω^{ab;c}_n; 003 Eq. 11"),
    "spin_bcp_dipole": (("band", "i", "j", "k", "spin"), -1, 3, "spin BCP dipole density",
                        "exact ∂_e 2 Σ_m g^{ad;c}_nm / ε_nm; 003 Eq. 13"),
    "zeeman_qgt_curvature_dipole": (("band", "i", "j", "spin"), 0, 2, "Zeeman Berry curvature dipole density",
                                    "exact ∂_e Ω̄^{ab}_n = ∂_a∂_e σ^b_nn; 003 Eq. 10"),
    "zeeman_bcp_dipole": (("band", "i", "j", "spin"), -1, 2, "anomalous spin polarizability dipole density",
                          "exact ∂_e 2 Σ_m ḡ^{ba}_nm / ε_nm; 003 Eq. 12"),
    "zeeman_hspace_bcp_dipole": (("band", "i", "j", "spin"), -2, 2, "h-space BCP dipole density",
                                 "exact ∂_e 2 Σ_m Ω̄^{ca}_nm / ε_nm²; 003 Eq. 14"),
}
SPIN_PAIR_INFO = {
    "spin_qgt_metric_pair": (("band", "band_m", "i", "j", "spin"), 0, 2, "local spin quantum metric g^{ab;c}_nm",
                             "Re v^{a;c}_nm v^b_mn / ε_nm²; 003 Eq. 2, 7"),
    "spin_qgt_curvature_pair": (("band", "band_m", "i", "j", "spin"), 0, 2, "local spin Berry curvature Ω^{ab;c}_nm",
                                "−2 Im v^{a;c}_nm v^b_mn / ε_nm²; 003 Eq. 2, 7"),
    "zeeman_qgt_metric_pair": (("band", "band_m", "i", "spin"), 0, 1, "local Zeeman quantum metric ḡ^{ab}_nm",
                               "Re r^a_nm σ^b_mn; 003 Eq. 3, 8"),
    "zeeman_qgt_curvature_pair": (("band", "band_m", "i", "spin"), 0, 1, "local Zeeman Berry curvature Ω̄^{ab}_nm",
                                  "−2 Im r^a_nm σ^b_mn; 003 Eq. 3, 8"),
}
SPIN_FIELDS = tuple(SPIN_FIELD_INFO)
SPIN_DIPOLE_FIELDS = tuple(SPIN_DIPOLE_INFO)
SPIN_PAIR_FIELDS = tuple(SPIN_PAIR_INFO)


@njit(cache=True, error_model="numpy")
def _zero(F):
    flat = F.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = 0.0


@njit(cache=True, error_model="numpy")
def _avg_pairs(gs, ge, F):
    """Replace every (n, m) entry by the average over the block D(n)×D(m) (in place)."""
    n = F.shape[0]
    flat = F.reshape(n, n, -1)
    i = 0
    while i < n:
        j = 0
        while j < n:
            if (ge[i] - gs[i]) * (ge[j] - gs[j]) > 1:
                w = 1.0 / ((ge[i] - gs[i]) * (ge[j] - gs[j]))
                for q in range(flat.shape[2]):
                    acc = 0.0
                    for r in range(gs[i], ge[i]):
                        for s in range(gs[j], ge[j]):
                            acc += flat[r, s, q]
                    acc *= w
                    for r in range(gs[i], ge[i]):
                        for s in range(gs[j], ge[j]):
                            flat[r, s, q] = acc
            j = ge[j]
        i = ge[i]


@njit(cache=True, error_model="numpy")
def _spin_one_k(Hu, i2, active, n_full, thresh, gauge_seed, do_dip, do_pair, spin,
                E, U, grp, gs, ge, R, Sg, S, SbV, GbV, inv, DV, DG, DS, scratch, work,
                sexp, svel, sveld, sm, sc, zm, zc, sxg, sbcp, zbcp, zh, ssea, zsea,
                d_sxg, d_sc, d_sbcp, d_zc, d_zbcp, d_zh, psm, psc, pzm, pzc):
    n = Hu.shape[1]
    d = i2.shape[0]
    eigh_small_ws(Hu[0], E, U, work)
    ngroups = _groups(E, thresh, grp)
    if gauge_seed >= 0:
        _random_gauge(U, grp, ngroups)
    # group boundaries (groups are consecutive in the sorted spectrum)
    p0 = 0
    for i in range(1, n + 1):
        if i == n or grp[i] != grp[p0]:
            for r in range(p0, i):
                gs[r] = p0
                ge[r] = i
            p0 = i
    # eigenbasis V^a (slots 1..d) and W^{ab}; spin Σ^c
    for u in range(1, n_full):
        if active[u]:
            _rotate(U, Hu[u], R[u], scratch)
    for c in range(3):
        _rotate(U, spin[c], Sg[c], scratch)
    V = R[1:1 + d]
    for i in range(n):
        for j in range(n):
            inv[i, j] = 0.0 if grp[i] == grp[j] else 1.0 / (E[i] - E[j])
    # spin-current matrices S^{a;c} = ¼(V^a Σ^c + Σ^c V^a) (Hermitian)
    for a in range(d):
        for c in range(3):
            for i in range(n):
                for j in range(i, n):
                    acc = 0j
                    for l in range(n):
                        acc += V[a, i, l] * Sg[c, l, j] + Sg[c, i, l] * V[a, l, j]
                    acc *= 0.25
                    S[a, c, i, j] = acc
                    if j != i:
                        S[a, c, j, i] = np.conj(acc)
    # group-block products (O_blk V^b)_mn = Σ_{m'∈D(m)} O_mm' V^b_m'n for the Δ̄ terms of Eq. 13–14
    for b in range(d):
        for i in range(n):
            for j in range(n):
                for c in range(3):
                    acc = 0j
                    for r in range(gs[i], ge[i]):
                        acc += Sg[c, i, r] * V[b, r, j]
                    GbV[c, b, i, j] = acc
                    for a in range(d):
                        acc = 0j
                        for r in range(gs[i], ge[i]):
                            acc += S[a, c, i, r] * V[b, r, j]
                        SbV[a, c, b, i, j] = acc
    if do_dip:
        # covariant derivatives of the matrix elements between different groups
        for e in range(d):
            for i in range(n):
                for j in range(n):
                    if grp[i] == grp[j]:
                        for b in range(d):
                            DV[e, b, i, j] = 0.0
                        for c in range(3):
                            DG[e, c, i, j] = 0.0
                            for a in range(d):
                                DS[e, a, c, i, j] = 0.0
                        continue
                    for b in range(d):
                        acc = R[i2[b, e], i, j]
                        for l in range(n):
                            if grp[l] != grp[i]:
                                acc += V[e, i, l] * V[b, l, j] * inv[i, l]
                            if grp[l] != grp[j]:
                                acc += V[b, i, l] * V[e, l, j] * inv[j, l]
                        DV[e, b, i, j] = acc
                    for c in range(3):
                        acc = 0j
                        for l in range(n):
                            if grp[l] != grp[i]:
                                acc += V[e, i, l] * Sg[c, l, j] * inv[i, l]
                            if grp[l] != grp[j]:
                                acc += Sg[c, i, l] * V[e, l, j] * inv[j, l]
                        DG[e, c, i, j] = acc
                        for a in range(d):
                            Wae = R[i2[a, e]]
                            acc = 0j
                            for l in range(n):
                                acc += 0.25 * (Wae[i, l] * Sg[c, l, j] + Sg[c, i, l] * Wae[l, j])
                                if grp[l] != grp[i]:
                                    acc += V[e, i, l] * S[a, c, l, j] * inv[i, l]
                                if grp[l] != grp[j]:
                                    acc += S[a, c, i, l] * V[e, l, j] * inv[j, l]
                            DS[e, a, c, i, j] = acc
    _zero(sm)
    _zero(sc)
    _zero(zm)
    _zero(zc)
    _zero(sxg)
    _zero(sbcp)
    _zero(zbcp)
    _zero(zh)
    _zero(ssea)
    _zero(zsea)
    if do_dip:
        _zero(d_sxg)
        _zero(d_sc)
        _zero(d_sbcp)
        _zero(d_zc)
        _zero(d_zbcp)
        _zero(d_zh)
    if do_pair:
        _zero(psm)
        _zero(psc)
        _zero(pzm)
        _zero(pzc)
    for i in range(n):
        for m in range(n):
            if grp[m] == grp[i]:
                continue
            x = inv[i, m]
            x2 = x * x
            x3 = x2 * x
            x4 = x2 * x2
            # ---- spin QGT family: p = S^{a;c}_nm V^b_mn
            for a in range(d):
                for c in range(3):
                    s_im = S[a, c, i, m]
                    for b in range(d):
                        p = s_im * V[b, m, i]
                        pr = p.real
                        pi = p.imag
                        sm[i, a, b, c] += pr * x2
                        sc[i, a, b, c] -= 2.0 * pi * x2
                        sxg[i, a, b, c] += pr * x
                        sbcp[i, a, b, c] += 2.0 * pr * x3
                        if do_pair:
                            psm[i, m, a, b, c] = pr * x2
                            psc[i, m, a, b, c] = -2.0 * pi * x2
                        for e in range(d):
                            # p ∂_e ε_nm as group blocks (degenerate perturbation theory, see kernels.py):
                            # Σ_{n∈D} p_nm ∂_eε_n → Tr_D[V^e_DD (S_{:m} V^b_{m:})_DD], likewise for m's group
                            pdE = 0j
                            for l in range(gs[i], ge[i]):
                                pdE += s_im * V[b, m, l] * V[e, l, i]
                            for l in range(gs[m], ge[m]):
                                pdE -= s_im * V[e, m, l] * V[b, l, i]
                            # Q/ε²: 2Δ^e_mn g^{ab;c}_nm x² + Δ̄^{a;c}_mn g^{be}_nm x² (group blocks)
                            t = (V[b, i, m] * SbV[a, c, e, m, i]).real - (SbV[a, c, b, i, m] * V[e, m, i]).real
                            ssea[i, a, b, e, c] += (t - 2.0 * pdE.real) * x4
                            if do_dip:
                                dp = DS[e, a, c, i, m] * V[b, m, i] + s_im * DV[e, b, m, i]
                                d_sxg[i, a, b, e, c] += dp.real * x - pdE.real * x2
                                d_sc[i, a, b, e, c] -= 2.0 * (dp.imag * x2 - 2.0 * pdE.imag * x3)
                                d_sbcp[i, a, b, e, c] += 2.0 * (dp.real * x3 - 3.0 * pdE.real * x4)
            # ---- Zeeman QGT family: q = V^a_nm Σ^c_mn, A^a_nm σ^c_mn = −i q x
            for a in range(d):
                for c in range(3):
                    q = V[a, i, m] * Sg[c, m, i]
                    qr = q.real
                    qi = q.imag
                    zm[i, a, c] += qi * x
                    zc[i, a, c] += 2.0 * qr * x
                    zbcp[i, a, c] += 2.0 * qi * x2
                    zh[i, a, c] += 4.0 * qr * x3
                    if do_pair:
                        pzm[i, m, a, c] = qi * x
                        pzc[i, m, a, c] = 2.0 * qr * x
                    for e in range(d):
                        qdE = 0j  # q ∂_e ε_nm as group blocks (as pdE above)
                        for l in range(gs[i], ge[i]):
                            qdE += V[a, i, m] * Sg[c, m, l] * V[e, l, i]
                        for l in range(gs[m], ge[m]):
                            qdE -= V[a, i, m] * V[e, m, l] * Sg[c, l, i]
                        # Z/ε³ (b = a here, c = e, spin a = c): Δ^e_mn Ω̄/2 x³ + Δ̄ ε g^{ae} x³ (group blocks)
                        t = (V[a, i, m] * GbV[c, e, m, i]).real - (GbV[c, a, i, m] * V[e, m, i]).real
                        zsea[i, a, e, c] += (0.5 * t - qdE.real) * x4
                        if do_dip:
                            dq = DV[e, a, i, m] * Sg[c, m, i] + V[a, i, m] * DG[e, c, m, i]
                            d_zc[i, a, e, c] += 2.0 * (dq.real * x - qdE.real * x2)
                            d_zbcp[i, a, e, c] += 2.0 * (dq.imag * x2 - 2.0 * qdE.imag * x3)
                            d_zh[i, a, e, c] += 4.0 * (dq.real * x3 - 3.0 * qdE.real * x4)
    # diagonal (intraband) fields
    for i in range(n):
        for c in range(3):
            sexp[i, c] = Sg[c, i, i].real
            for a in range(d):
                svel[i, a, c] = S[a, c, i, i].real
                for b in range(d):
                    Wab = R[i2[a, b]]
                    acc = 0j
                    for l in range(n):
                        acc += Wab[i, l] * Sg[c, l, i]
                    sveld[i, a, b, c] = 0.5 * acc.real + 2.0 * sxg[i, a, b, c]
    if ngroups < n:
        _avg2(grp, sexp)
        _avg2(grp, svel)
        _avg2(grp, sveld)
        _avg2(grp, sm)
        _avg2(grp, sc)
        _avg2(grp, zm)
        _avg2(grp, zc)
        _avg2(grp, sxg)
        _avg2(grp, sbcp)
        _avg2(grp, zbcp)
        _avg2(grp, zh)
        _avg2(grp, ssea)
        _avg2(grp, zsea)
        if do_dip:
            _avg2(grp, d_sxg)
            _avg2(grp, d_sc)
            _avg2(grp, d_sbcp)
            _avg2(grp, d_zc)
            _avg2(grp, d_zbcp)
            _avg2(grp, d_zh)
        if do_pair:
            _avg_pairs(gs, ge, psm)
            _avg_pairs(gs, ge, psc)
            _avg_pairs(gs, ge, pzm)
            _avg_pairs(gs, ge, pzc)


@njit(parallel=True, cache=True, error_model="numpy")
def spin_chunk(Hu, i2, active, spin, thresh, gauge_seed, n_blocks, do_dip, do_pair,
               sexp, svel, sveld, sm, sc, zm, zc, sxg, sbcp, zbcp, zh, ssea, zsea,
               d_sxg, d_sc, d_sbcp, d_zc, d_zbcp, d_zh, psm, psc, pzm, pzc):
    """Fill the spin/Zeeman field arrays of a whole chunk (parallel over blocks of k).

    Hu (N, U, n, n): compact derivatives (U ≥ 1 + d + d(d+1)/2; slots beyond second order unused);
    i2: slot map of ∂_a∂_bH; ``active[u]`` False for slots that vanish on the chunk; spin (3, n, n).
    Outputs in the layouts of the module docstring. When ``do_dip`` (``do_pair``) is False the dipole
    (pair) arrays may have a leading length of 1 and are not touched. ``gauge_seed`` ≥ 0 applies random
    unitaries inside degenerate groups (test hook).
    """
    N = Hu.shape[0]
    n = Hu.shape[2]
    d = i2.shape[0]
    n_full = 1 + d + d * (d + 1) // 2
    per = (N + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        if gauge_seed >= 0:
            np.random.seed(gauge_seed + blk)
        E = np.empty(n)
        U = np.empty((n, n), np.complex128)
        grp = np.empty(n, np.int64)
        gs = np.empty(n, np.int64)
        ge = np.empty(n, np.int64)
        R = np.zeros((n_full, n, n), np.complex128)
        Sg = np.empty((3, n, n), np.complex128)
        S = np.empty((d, 3, n, n), np.complex128)
        SbV = np.empty((d, 3, d, n, n), np.complex128)
        GbV = np.empty((3, d, n, n), np.complex128)
        inv = np.empty((n, n))
        nd = d if do_dip else 0
        DV = np.empty((nd, d, n, n), np.complex128)
        DG = np.empty((nd, 3, n, n), np.complex128)
        DS = np.empty((nd, d, 3, n, n), np.complex128)
        scratch = np.empty((n, n), np.complex128)
        work = np.empty((n, n), np.complex128)
        for kk in range(blk * per, min(N, (blk + 1) * per)):
            kd = kk if do_dip else 0
            kp = kk if do_pair else 0
            _spin_one_k(Hu[kk], i2, active, n_full, thresh, gauge_seed, do_dip, do_pair, spin,
                        E, U, grp, gs, ge, R, Sg, S, SbV, GbV, inv, DV, DG, DS, scratch, work,
                        sexp[kk], svel[kk], sveld[kk], sm[kk], sc[kk], zm[kk], zc[kk], sxg[kk], sbcp[kk],
                        zbcp[kk], zh[kk], ssea[kk], zsea[kk],
                        d_sxg[kd], d_sc[kd], d_sbcp[kd], d_zc[kd], d_zbcp[kd], d_zh[kd],
                        psm[kp], psc[kp], pzm[kp], pzc[kp])


def _allocate(N: int, n: int, d: int, dipoles: bool, pairs: bool) -> dict[str, np.ndarray]:
    Nd = N if dipoles else 1
    Np = N if pairs else 1
    out = {
        "spin_expectation": np.empty((N, n, 3)),
        "spin_velocity": np.empty((N, n, d, 3)),
        "spin_velocity_derivative": np.empty((N, n, d, d, 3)),
        "spin_qgt_metric": np.empty((N, n, d, d, 3)),
        "spin_qgt_curvature": np.empty((N, n, d, d, 3)),
        "zeeman_qgt_metric": np.empty((N, n, d, 3)),
        "zeeman_qgt_curvature": np.empty((N, n, d, 3)),
        "spin_qgt_metric_x_gap": np.empty((N, n, d, d, 3)),
        "spin_bcp": np.empty((N, n, d, d, 3)),
        "zeeman_bcp": np.empty((N, n, d, 3)),
        "zeeman_hspace_bcp": np.empty((N, n, d, 3)),
        "spin_nonlinear_sea": np.empty((N, n, d, d, d, 3)),
        "zeeman_nonlinear_sea": np.empty((N, n, d, d, 3)),
        "spin_qgt_metric_x_gap_dipole": np.empty((Nd, n, d, d, d, 3)),
        "spin_qgt_curvature_dipole": np.empty((Nd, n, d, d, d, 3)),
        "spin_bcp_dipole": np.empty((Nd, n, d, d, d, 3)),
        "zeeman_qgt_curvature_dipole": np.empty((Nd, n, d, d, 3)),
        "zeeman_bcp_dipole": np.empty((Nd, n, d, d, 3)),
        "zeeman_hspace_bcp_dipole": np.empty((Nd, n, d, d, 3)),
        "spin_qgt_metric_pair": np.empty((Np, n, n, d, d, 3)),
        "spin_qgt_curvature_pair": np.empty((Np, n, n, d, d, 3)),
        "zeeman_qgt_metric_pair": np.empty((Np, n, n, d, 3)),
        "zeeman_qgt_curvature_pair": np.empty((Np, n, n, d, 3)),
    }
    return out


def _check_spin(spin, n: int) -> np.ndarray:
    spin = np.ascontiguousarray(np.asarray(spin, dtype=complex))
    if spin.shape != (3, n, n):
        raise ValueError(f"spin operator has shape {spin.shape}; expected (3, {n}, {n}) (σ^x, σ^y, σ^z)")
    if not np.all(np.isfinite(spin)):
        raise ValueError("spin operator has NaN or inf entries")
    herm = np.abs(spin - np.conj(np.swapaxes(spin, -1, -2))).max()
    if herm > 1e-12 * max(1.0, np.abs(spin).max()):
        raise ValueError(f"spin operator is not Hermitian (max |σ − σ†| = {herm:.3g})")
    return spin


def spin_fields(Hu: np.ndarray, dim: int, spin: np.ndarray, degeneracy_threshold: float = 1e-6,
                n_threads: int | None = None, gauge_seed: int = -1, *, dipoles: bool = True, pairs: bool = False,
                active=None) -> dict[str, np.ndarray]:
    """Spin and Zeeman quantum-geometry fields (003) from the compact derivative array Hu (N, U, n, n).

    ``spin`` (3, n, n): the Hermitian, k-independent spin operator (σ^x, σ^y, σ^z). Returns {name: array}
    in the layouts of the module docstring: always :data:`SPIN_FIELDS`; :data:`SPIN_DIPOLE_FIELDS` when
    ``dipoles``; :data:`SPIN_PAIR_FIELDS` (O(n²) per k) when ``pairs``. Hu needs the slots up to second order
    (U ≥ 1 + d + d(d+1)/2, e.g. ``model.unique_derivatives(k)``). ``active``: bool per slot, False where
    the slot vanishes identically (rotation skipped). ``gauge_seed`` ≥ 0: random unitaries inside degenerate
    groups (test hook).
    """
    Hu = np.ascontiguousarray(Hu, dtype=complex)
    if Hu.ndim != 4 or Hu.shape[2] != Hu.shape[3]:
        raise ValueError(f"Hu has shape {Hu.shape}; expected (N, U, n, n)")
    N, n = Hu.shape[0], Hu.shape[2]
    d = int(dim)
    if d not in (1, 2, 3):
        raise ValueError(f"dimension {dim}; expected 1, 2 or 3")
    need = 1 + d + d * (d + 1) // 2
    if Hu.shape[1] < need or Hu.shape[1] > len(unique_multi_indices(d)):
        raise ValueError(f"Hu has {Hu.shape[1]} derivative slots; dimension {d} needs {need} "
                         f"(up to second order) to {len(unique_multi_indices(d))}")
    spin = _check_spin(spin, n)
    out = _allocate(N, n, d, dipoles and N > 0, pairs and N > 0)
    if N > 0:
        n_blocks = block_count(N, n_threads)
        _i1, i2, _i3 = index_maps(d)
        active = np.ones(Hu.shape[1], bool) if active is None else np.asarray(active, bool)
        if active.shape[0] < Hu.shape[1]:
            raise ValueError(f"active has {active.shape[0]} entries; Hu has {Hu.shape[1]} slots")
        spin_chunk(Hu, i2, active, spin, float(degeneracy_threshold), int(gauge_seed), n_blocks,
                   bool(dipoles), bool(pairs), *(out[name] for name in SPIN_FIELDS + SPIN_DIPOLE_FIELDS
                                                 + SPIN_PAIR_FIELDS))
    names = SPIN_FIELDS + (SPIN_DIPOLE_FIELDS if dipoles else ()) + (SPIN_PAIR_FIELDS if pairs else ())
    if N == 0:  # shapes with N = 0 for the requested groups
        out = _allocate(0, n, d, True, True)
    return {name: out[name] for name in names}


def compute_spin_fields(model, k: np.ndarray, degeneracy_threshold: float = 1e-6, n_threads: int | None = None,
                        gauge_seed: int = -1, *, dipoles: bool = True, pairs: bool = False) -> dict[str, np.ndarray]:
    """:func:`spin_fields` of ``model`` (with its ``spin`` operator) at k-points ``k`` (N, dim).

    A model of independent sectors (valleys) is computed sector by sector with each sector's spin
    operator and stacked along ``band`` (pair fields: block-diagonal in (n, m)), as ``compute_fields`` does.
    Refuses a model without a spin operator (``model.spin is None``). With the Wannier position operator
    (``model.position``) the fields come from :func:`spin_fields_position`: those without a full-operator form
    (``position.TB_ONLY_FIELDS``) are NaN.
    """
    sectors = getattr(model, "sectors", None)
    if model.spin is None or (sectors and any(m.spin is None for m in sectors)):
        raise ValueError(f"model '{model.name}' has no spin operator (Model.spin is None): the spin and Zeeman "
                         "quantum geometry of 003 needs one; give the model a (3, n, n) spin operator "
                         "(e.g. the Pauli matrices for massive_dirac / snte_surface_dirac)")
    k = np.ascontiguousarray(np.asarray(k, float).reshape(-1, model.dim))
    if sectors:
        parts = [compute_spin_fields(m, k, degeneracy_threshold, n_threads, gauge_seed, dipoles=dipoles, pairs=pairs)
                 for m in sectors]
        out = {}
        for name in parts[0]:
            if name in SPIN_PAIR_INFO:
                ntot = sum(p[name].shape[1] for p in parts)
                arr = np.zeros((k.shape[0], ntot, ntot) + parts[0][name].shape[3:])
                lo = 0
                for p in parts:
                    nb = p[name].shape[1]
                    arr[:, lo:lo + nb, lo:lo + nb] = p[name]
                    lo += nb
                out[name] = arr
            else:
                out[name] = np.concatenate([p[name] for p in parts], axis=1)
        return out
    if getattr(model, "position", None) is not None:  # refused fields come back as NaN (spin_fields_position)
        return spin_fields_position(model.unique_derivatives(k), model.position.unique_derivatives(k, order=1),
                                    model.dim, model.spin, degeneracy_threshold, n_threads, gauge_seed,
                                    dipoles=dipoles, pairs=pairs, active=model.active_slots())
    return spin_fields(model.unique_derivatives(k), model.dim, model.spin, degeneracy_threshold, n_threads,
                       gauge_seed, dipoles=dipoles, pairs=pairs, active=model.active_slots())


def full_velocity_slots(Hu: np.ndarray, A: np.ndarray, dim: int) -> np.ndarray:
    """Hu with the first-derivative slots ∂_aH replaced by the full Wannier-gauge velocity
    𝒱^a = ∂_aH − i[A^W_a, H] (docs/spin-position-operator.md); A (N, d, n, n) = A^W_a(k). A copy: Hu is not
    modified. The other slots (H, ∂²H, …) are kept as they are."""
    out = np.array(Hu, dtype=complex, copy=True)
    H = Hu[:, 0]
    for a in range(dim):
        out[:, 1 + a] -= 1j * (A[:, a] @ H - H @ A[:, a])
    return out


def _plain_eigenbasis(H, dH, degeneracy_threshold: float):
    """A batch's eigenvectors U, U†, the same-group mask, 1/(ε_n − ε_m) off the groups (0 inside), the group-average
    matrix and the plain V^e = U†∂_eH U: what the NumPy position-operator routes below share."""
    E, U = np.linalg.eigh(H)
    Ud = np.conj(np.swapaxes(U, -1, -2))
    grp = group_labels(E, degeneracy_threshold)
    same = grp[:, :, None] == grp[:, None, :]
    gap = E[:, :, None] - E[:, None, :]
    X = np.where(same, 0.0, 1.0 / np.where(same, 1.0, gap))
    avg = same / same.sum(axis=2)[:, :, None]
    return U, Ud, same, X, avg, [Ud @ v @ U for v in dH]


def spin_velocity_derivative_position(Hu: np.ndarray, Au: np.ndarray, dim: int, spin: np.ndarray,
                                      degeneracy_threshold: float = 1e-6, batch: int = 256) -> np.ndarray:
    """Exact ∂_b v^{a;c}_nn (N, n, d, d, 3) [a, b, c] of the Wannier-space spin current S = ¼{𝒱^a, σ^c},
    𝒱^a = ∂_aH − i[A^W_a, H] (docs/spin-position-operator.md §3): per degenerate group D (band value = group trace
    / group size)

        ∂_b Tr_D S = Tr_D[U†(∂_bS)U] + 2 Re Σ_{n∈D, m∉D} S_nm V^b_mn / (ε_n − ε_m),
        ∂_bS = ¼{∂_b𝒱^a, σ^c},  ∂_b𝒱^a = ∂_a∂_bH − i[∂_bA^W_a, H] − i[A^W_a, ∂_bH],

    with the plain V^b = U†∂_bH U (the eigenvectors are those of H alone). Batched NumPy, its own eigh; needs Hu to
    second order and Au to first (``Au`` (N, d, U', n, n), U' ≥ 1 + d)."""
    i1, i2, _ = index_maps(dim)
    N, n = Hu.shape[0], Hu.shape[2]
    d = dim
    out = np.empty((N, n, d, d, 3))
    spin = np.asarray(spin, complex)
    for lo in range(0, N, batch):
        hi = min(N, lo + batch)
        H, dH, A = Hu[lo:hi, 0], [Hu[lo:hi, i1[a]] for a in range(d)], Au[lo:hi, :, 0]
        U, Ud, _, X, avg, V = _plain_eigenbasis(H, dH, degeneracy_threshold)
        for a in range(d):
            Va = dH[a] - 1j * (A[:, a] @ H - H @ A[:, a])
            for b in range(d):
                dA = Au[lo:hi, a, i1[b]]
                dVa = (Hu[lo:hi, i2[a, b]] - 1j * (dA @ H - H @ dA)
                       - 1j * (A[:, a] @ dH[b] - dH[b] @ A[:, a]))
                for c in range(3):
                    S = Ud @ (0.25 * (Va @ spin[c] + spin[c] @ Va)) @ U
                    dS = Ud @ (0.25 * (dVa @ spin[c] + spin[c] @ dVa)) @ U
                    row = np.einsum("kii->ki", dS).real + 2.0 * np.einsum("knm,kmn,knm->kn", S, V[b], X).real
                    out[lo:hi, :, a, b, c] = np.einsum("kij,kj->ki", avg, row)
    return out


def spin_dipoles_position(Hu: np.ndarray, Au: np.ndarray, dim: int, spin: np.ndarray,
                          degeneracy_threshold: float = 1e-6, batch: int = 128) -> dict[str, np.ndarray]:
    """Exact k-derivatives of the spin QGT fields with the position operator: ``spin_qgt_metric_x_gap_dipole``,
    ``spin_qgt_curvature_dipole``, ``spin_bcp_dipole`` (N, n, d, d, d, 3) [a, b, e, c] (layouts of the module
    docstring), batched NumPy with its own eigh (docs/spin-position-operator.md §3).

    Each is ∂_e of a group sum Σ_{n∈D, m∉D} P_nm x^p_nm, P = S^{a;c}_nm 𝒱^b_mn (S = ¼{𝒱^a, σ^c},
    𝒱^a = ∂_aH − i[A^W_a, H]), with the plain-V derivative of eigenbasis matrix elements
    ∂_eO_nm = (U†∂_eO U)_nm + (C^eO − OC^e)_nm, C^e_nl = V^e_nl x_nl off the groups (V^e = U†∂_eH U), and
    P ∂_e x^p = −p x^{p+1} [S_nm ((𝒱^b V^e_DD)_mn − (V^e_D'D' 𝒱^b)_mn)] (the kernel's group blocks).
    Needs Hu to second order and Au to first (U' ≥ 1 + d)."""
    i1, i2, _ = index_maps(dim)
    N, n = Hu.shape[0], Hu.shape[2]
    d = dim
    names = ("spin_qgt_metric_x_gap_dipole", "spin_qgt_curvature_dipole", "spin_bcp_dipole")
    out = {name: np.empty((N, n, d, d, d, 3)) for name in names}
    spin = np.asarray(spin, complex)
    for lo in range(0, N, batch):
        hi = min(N, lo + batch)
        H, dH, A = Hu[lo:hi, 0], [Hu[lo:hi, i1[a]] for a in range(d)], Au[lo:hi, :, 0]
        U, Ud, same, X, avg, V = _plain_eigenbasis(H, dH, degeneracy_threshold)
        C = [v * X for v in V]
        Vg = [v * same for v in V]
        # orbital-basis 𝒱^a and ∂_e𝒱^a, then eigenbasis values and their plain-V derivatives
        Vo = [dH[a] - 1j * (A[:, a] @ H - H @ A[:, a]) for a in range(d)]
        dVo = [[Hu[lo:hi, i2[a, e]] - 1j * (Au[lo:hi, a, i1[e]] @ H - H @ Au[lo:hi, a, i1[e]])
                - 1j * (A[:, a] @ dH[e] - dH[e] @ A[:, a]) for e in range(d)] for a in range(d)]
        Ve = [Ud @ v @ U for v in Vo]
        DVe = [[Ud @ dVo[a][e] @ U + C[e] @ Ve[a] - Ve[a] @ C[e] for e in range(d)] for a in range(d)]
        for a in range(d):
            for c in range(3):
                S = Ud @ (0.25 * (Vo[a] @ spin[c] + spin[c] @ Vo[a])) @ U
                DS = [Ud @ (0.25 * (dVo[a][e] @ spin[c] + spin[c] @ dVo[a][e])) @ U + C[e] @ S - S @ C[e]
                      for e in range(d)]
                for b in range(d):
                    Zt = np.swapaxes(Ve[b], 1, 2)  # Zt[n, m] = 𝒱^b_mn
                    for e in range(d):
                        dP = DS[e] * Zt + S * np.swapaxes(DVe[b][e], 1, 2)
                        pdE = S * np.swapaxes(Ve[b] @ Vg[e] - Vg[e] @ Ve[b], 1, 2)
                        rows = {"spin_qgt_metric_x_gap_dipole": (dP.real * X - pdE.real * X**2),
                                "spin_qgt_curvature_dipole": -2.0 * (dP.imag * X**2 - 2.0 * pdE.imag * X**3),
                                "spin_bcp_dipole": 2.0 * (dP.real * X**3 - 3.0 * pdE.real * X**4)}
                        for name, r in rows.items():
                            out[name][lo:hi, :, a, b, e, c] = np.einsum("kij,kj->ki", avg, r.sum(axis=2))
    return out


def spin_fields_position(Hu: np.ndarray, Au: np.ndarray, dim: int, spin: np.ndarray,
                         degeneracy_threshold: float = 1e-6, n_threads: int | None = None, gauge_seed: int = -1, *,
                         dipoles: bool = True, pairs: bool = False, active=None) -> dict[str, np.ndarray]:
    """:func:`spin_fields` with the Wannier position operator (docs/spin-position-operator.md).

    ``Au`` (N, d, U', n, n): A^W and its derivatives, as ``model.position.unique_derivatives`` (U' ≥ 1; with
    U' ≥ 1 + d the exact ``spin_velocity_derivative`` and, when ``dipoles``, the three spin dipoles are computed
    by :func:`spin_velocity_derivative_position` and :func:`spin_dipoles_position`; otherwise they are NaN). The kernel runs unchanged on the compact array whose velocity slots hold the
    full velocity 𝒱^a = ∂_aH − i[A^W_a, H] (rotated to the eigenbasis the kernel computes anyway), so its interband
    connection is the full 𝒜^a = Ā^a − iV̂^a and the spin-current vertex is S^{a;c} = ¼{𝒱^a, σ^c} in the Wannier
    space. Exact for the fields of ``position.SPIN_FULL_VELOCITY_FIELDS`` (they read only 𝒱, ∂𝒱 and σ) and for
    ``spin_expectation``. The Zeeman family (refused in ``position.py``) is returned filled with NaN, so that it can
    never pass for a value. ``Au`` all zero gives bit-identical values to :func:`spin_fields`.
    """
    from qgtflow.geometry.position import SPIN_FULL_VELOCITY_FIELDS

    Hu = np.ascontiguousarray(Hu, dtype=complex)
    Au = np.asarray(Au)
    d = int(dim)
    if Hu.ndim != 4 or Au.ndim != 5 or Au.shape[0] != Hu.shape[0] or Au.shape[1] != d \
            or Au.shape[3:] != Hu.shape[2:]:
        raise ValueError(f"position operator derivatives have shape {Au.shape}; expected (N, d, U, n, n) = "
                         f"({Hu.shape[0] if Hu.ndim == 4 else 'N'}, {d}, U, {Hu.shape[-1]}, {Hu.shape[-1]})")
    full = full_velocity_slots(Hu, Au[:, :, 0], d)
    # the velocity slots are nonzero wherever A^W is: never skip their rotation
    if active is not None:
        active = np.array(active, bool, copy=True)
        active[1:1 + d] = True
    out = spin_fields(full, d, spin, degeneracy_threshold, n_threads, gauge_seed, dipoles=False, pairs=pairs,
                      active=active)
    # the kernel's ∂_b v^{a;c}_nn assumes ∂_bσ-only vertices (not the full-operator one): replaced below
    keep = (set(SPIN_FULL_VELOCITY_FIELDS) | {"spin_expectation"}) - {"spin_velocity_derivative"}
    for name in list(out):
        if name not in keep:
            out[name] = np.full_like(out[name], np.nan)
    if Au.shape[2] > d:  # ∂A^W given: the exact ∂_b v^{a;c}_nn (else NaN, like the refused fields)
        out["spin_velocity_derivative"] = spin_velocity_derivative_position(Hu, Au, d, _check_spin(spin, Hu.shape[2]),
                                                                            degeneracy_threshold)
    if dipoles:
        N, n = Hu.shape[0], Hu.shape[2]
        shapes = _allocate(N, n, d, True, False)
        out.update({name: np.full_like(shapes[name], np.nan) for name in SPIN_DIPOLE_FIELDS})
        if Au.shape[2] > d:  # the spin dipoles (the Zeeman ones stay NaN)
            out.update(spin_dipoles_position(Hu, Au, d, _check_spin(spin, n), degeneracy_threshold))
    order = SPIN_FIELDS + SPIN_DIPOLE_FIELDS + SPIN_PAIR_FIELDS
    return {name: out[name] for name in order if name in out}
