"""The config keys every VR trainer node has, and those of the description methods, with their checks."""

PRECISIONS = ("fp16", "bf16", "fp32")
LOGIT_MATHS = ("reference", "precise")


def add_common_keys(node, prompt="padding", input_size=192, pad=30, templates=None, batch_size_1shot=0):
    """Keys every VR trainer node has (each trainer registers its own node with its defaults)."""
    node.PROMPT = prompt  # a registered prompt kind (vr/prompts.py): padding | watermark | none
    # > 0: the training batch when DATASET.NUM_SHOTS is 1 (the AttrVR reference: 16 for VP, AR, AttrVR);
    # 0: DATALOADER.TRAIN_X.BATCH_SIZE at every shot count (the DVP reference)
    node.BATCH_SIZE_1SHOT = batch_size_1shot
    node.INPUT_SIZE = input_size  # padding: side of the image inside the frame
    node.PAD = pad  # watermark: frame width in pixels
    node.PRECISION = "fp16"  # training steps: fp16 | bf16 autocast (CUDA; fp16 -> fp32 on CPU) | fp32
    # reference: the references' order and precision (features times the logit scale before the text matmul;
    # under autocast the PRM product in fp16); precise: scale after the matmul, PRM product in fp32
    node.LOGIT_MATH = "reference"
    node.ENCODER_CHUNK = 0  # > 0: run the image encoder on at most this many images at once
    node.FIRST_LAYER_SPLIT = True  # CLIP's first layer on image and prompt parts apart (exact; vr/clip.py)
    if templates is not None:
        node.TEMPLATES = templates  # vr: 'This is a photo of {}.' | coop: CoOp's per-dataset template


def add_description_keys(node, m=20):
    node.M = m  # sentences sampled per class (per file)
    node.SAMPLING = "reference"  # reference (random.sample / random.choices) | without (no repeats)


def check_description_cfg(node, name):
    """M and SAMPLING of a description method."""
    from descriptions import MODES

    if int(node.M) < 1:
        raise ValueError(f"TRAINER.{name}.M (sentences per class) must be at least 1, got {node.M}.")
    if node.SAMPLING not in MODES:
        raise ValueError(f'Unknown description sampling "{node.SAMPLING}" (TRAINER.{name}.SAMPLING). '
                         f"Use one of: {', '.join(MODES)}.")
