"""The equations of each model kind, shown read-only on the training page (as in the README's Models)."""

EQUATIONS = {
    "als": [
        ("prediction", "r̂_ui = μ + b_u + b_i + U_u · V_i"),
        ("objective", "λ/2 Σ (r_ui − r̂_ui)² + γ/2 (Σ b_u² + Σ b_i²) + τ/2 (Σ ‖U_u‖² + Σ ‖V_i‖²)"),
        ("user step", "U_u = (λ Σ_i V_i V_iᵀ + τ I)⁻¹ λ Σ_i V_i (r_ui − μ − b_u − b_i), after its bias given U_u"),
        ("item step", "the same for every V_i and b_i with the users fixed (alternating least squares)"),
        ("fold-in (this site)", "a new user's (b, U) solves the user step against the fixed items: no retraining"),
    ],
    "features": [
        ("prediction", "r̂_ui = μ + b_u + b_i + U_u · V_i"),
        ("genre prior", "V_i ~ N(c_i, τ⁻¹ I),  c_i = (1/√|F_i|) Σ_{f ∈ F_i} F_f,  F_f ~ N(0, β⁻¹ I)"),
        ("item step", "V_i = (λ Σ_u U_u U_uᵀ + τ I)⁻¹ (τ c_i + λ Σ_u U_u (r_ui − μ − b_u − b_i))"),
        ("cold start", "a film without ratings gets V_i = c_i: its genres place it"),
        ("fold-in (this site)", "a new user's (b, U) solves the user step against the fixed items"),
    ],
    "vi": [
        ("likelihood", "r_ui ~ N(μ + b_u + b_i + U_u · V_i, 1/λ),  U_u, V_i ~ N(0, diag(τ)⁻¹)"),
        ("posterior", "q(U_u) = N(m_u, S_u),  q(V_i) = N(m_i, S_i), fitted by coordinate ascent on the ELBO"),
        ("user step", "S_u = (diag(τ) + λ Σ_i (m_i m_iᵀ + S_i))⁻¹,  m_u = S_u λ Σ_i m_i (r_ui − μ − b_u − b_i)"),
        ("predictive variance", "m_uᵀ S_i m_u + m_iᵀ S_u m_i + tr(S_u S_i) + 1/λ"),
        ("strategies", "mean; penalized = mean / (1 + var); ucb = mean + β sd; thompson = one posterior draw"),
    ],
    "bias": [
        ("prediction", "r̂_ui = μ + b_u + b_i"),
        ("updates", "b_u = λ Σ_i (r_ui − μ − b_i) / (λ n_u + γ), and symmetrically for items"),
    ],
}
