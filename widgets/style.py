"""One colour per concept, the same in every view."""

COLORS = {
    "surprise": "#d62728",  # ||u_t||, the inner gradient
    "retrieval_error": "#ff7f0e",  # ||M(k_t) - v_t||
    "theta": "#1f77b4",  # inner learning rate
    "eta": "#2ca02c",  # momentum
    "alpha": "#7f7f7f",  # forgetting
    "memory": "RdBu",  # colour scale of memory weights (diverging, 0 = white)
    # experiments and results (widgets/forgetting.py, widgets/dashboard.py)
    "configs": ("#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"),  # one per model/config
    "phase": ("rgba(31, 119, 180, 0.08)", "rgba(255, 127, 14, 0.08)"),  # shading of task phases, cycled
    "accuracy": "Viridis",  # colour scale of accuracy in % (NIAH heatmap; sequential, 0 = dark)
    "paper": "#9e9e9e",  # the paper's number beside ours
    "reproduced": "#2e9e44",  # verdicts of a claim
    "partly": "#f0a202",
    "not at this scale": "#c0504d",
    # animated views (widgets/animator.py, widgets/cms.py, widgets/race.py)
    "cursor": "#222222",  # the shared time cursor and the current item
    "retrieved": "#9467bd",  # what the memory returns for a probe key, M(k)
    "value": "#17becf",  # the value v stored with a key (the probe's target)
    "weights_path": "#555555",  # the memory's path through weight space (PCA)
    "loss": "Greys",  # colour scale of a loss surface (log10 loss; sequential)
    "sgd": "#8c564b",  # outer optimizers, one colour each
    "momentum": "#2ca02c",  # heavy-ball momentum: the same concept as eta, the same green
    "adam": "#e377c2",
    "muon": "#bcbd22",
    "m3": "#3949ab",
    "m3_slow": "#0b5d1e",  # M3's slow momentum M2 (a darker momentum green)
    "delta_momentum": "#843c39",
    "cms_levels": ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2"),  # fast -> slow
    "cms_restart": "#000000",  # a nested restart from the slower parent (NL eq 72)
    "cms_idle": "#d9d9d9",  # a level that does not fire at this step
}
