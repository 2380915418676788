"""One colour per concept, the same in every view."""

COLORS = {
    "surprise": "#d62728",  # ||u_t||, the inner gradient
    "retrieval_error": "#ff7f0e",  # ||M(k_t) - v_t||
    "theta": "#1f77b4",  # inner learning rate
    "eta": "#2ca02c",  # momentum
    "alpha": "#7f7f7f",  # forgetting
    "memory": "RdBu",  # colour scale of memory weights (diverging, 0 = white)
}
