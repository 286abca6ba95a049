"""The ten public names of both loss families, and the three relatives of
BCEWithLogitsLoss (no pos_weight; SigmoidCrossEntropyWithLogits takes no weight
nor reduction either), called uniformly (the property tests and the robustness
sweep share this; the property tests draw from the two families only)."""
import ms_bce

LOGITS_APIS = ["ops.binary_cross_entropy_with_logits", "mint.nn.functional.binary_cross_entropy_with_logits",
               "ops.BCEWithLogitsLoss", "nn.BCEWithLogitsLoss", "mint.nn.BCEWithLogitsLoss"]
BCE_APIS = ["ops.binary_cross_entropy", "ops.BinaryCrossEntropy", "mint.nn.functional.binary_cross_entropy",
            "nn.BCELoss", "mint.nn.BCELoss"]
RELATIVE_APIS = ["ops.SigmoidCrossEntropyWithLogits", "ops.multilabel_soft_margin_loss", "nn.MultiLabelSoftMarginLoss"]


def loss_fn(api, w, p, reduction):
    """loss(x, y[, w][, p]) through `api`: weight and pos_weight as call
    arguments where the API takes them (so they can be differentiated), else
    as the cell's state (w and p are then Tensors or None)."""
    m = ms_bce
    if api == "ops.binary_cross_entropy_with_logits":
        return lambda x, y, w=w, p=p: m.ops.binary_cross_entropy_with_logits(x, y, w, p, reduction)
    if api == "mint.nn.functional.binary_cross_entropy_with_logits":
        return lambda x, y, w=w, p=p: m.mint.nn.functional.binary_cross_entropy_with_logits(x, y, w, reduction, p)
    if api == "ops.BCEWithLogitsLoss":
        op = m.ops.BCEWithLogitsLoss(reduction)
        return lambda x, y, w=w, p=p: op(x, y, w, p)
    if api == "nn.BCEWithLogitsLoss":
        return m.nn.BCEWithLogitsLoss(reduction, w, p)
    if api == "mint.nn.BCEWithLogitsLoss":
        return m.mint.nn.BCEWithLogitsLoss(w, reduction, p)
    if api == "ops.binary_cross_entropy":
        return lambda x, y, w=w: m.ops.binary_cross_entropy(x, y, w, reduction)
    if api == "ops.BinaryCrossEntropy":
        op = m.ops.BinaryCrossEntropy(reduction)
        return lambda x, y, w=w: op(x, y, w)
    if api == "mint.nn.functional.binary_cross_entropy":
        return lambda x, y, w=w: m.mint.nn.functional.binary_cross_entropy(x, y, w, reduction)
    if api == "nn.BCELoss":
        return m.nn.BCELoss(w, reduction)
    if api == "mint.nn.BCELoss":
        return m.mint.nn.BCELoss(w, reduction)
    if api == "ops.SigmoidCrossEntropyWithLogits":
        op = m.ops.SigmoidCrossEntropyWithLogits()
        return lambda x, y: op(x, y)
    if api == "ops.multilabel_soft_margin_loss":
        return lambda x, y, w=w: m.ops.multilabel_soft_margin_loss(x, y, w, reduction)
    if api == "nn.MultiLabelSoftMarginLoss":
        return m.nn.MultiLabelSoftMarginLoss(w, reduction)
    raise AssertionError(api)
