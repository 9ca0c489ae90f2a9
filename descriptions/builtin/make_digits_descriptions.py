"""Write the description files of the built-in Digits dataset (run from the repository root).

    python descriptions/builtin/make_digits_descriptions.py [--check]

The published description files cover the benchmark datasets only, so the project writes its own
for Digits, in the same format (a JSON object: class name, exactly as ``datasets/digits.py`` names
it, -> list of sentences). Every sentence names its digit, so that the text tower of ``digits-tiny``,
which learnt the digit names from short captions, gives the descriptions a meaningful embedding.

Files (beside this script): ``attributes/digits_des.json`` (descriptive, AttrVR DesAttr and DVP-cls),
``attributes/digits_dist.json`` (distinctive, AttrVR DistAttr), 25 sentences per class; and
``causes/digits_cse_{1,2,3}.json`` (DVP-cse: 1 overall shape, 2 pen strokes, 3 layout of the ink in
the image), 20 sentences per class. Each file is a fixed set of facts per digit, each said in five
phrasings. No randomness: running the script again gives the same bytes; ``--check`` fails if the
files on disk differ from what the script would write.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from engine.io import atomic_write_text  # noqa: E402  (stdlib only)

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# ------------------------------------------------------------------------------ descriptive (des)
DES_FRAMES = (
    "The handwritten digit {n} is drawn as {f}.",
    "A photo of the digit {n} shows {f}.",
    "In a scan, the number {n} appears as {f}.",
    "A handwritten {n} typically looks like {f}.",
    "An image of the digit {n} contains {f}.",
)
DES_FACTS = {
    "zero": ("a single closed oval loop", "a tall ellipse with an empty centre",
             "one continuous curved stroke that returns to its start",
             "a rounded ring that is taller than it is wide",
             "a smooth outline with no straight lines or corners"),
    "one": ("a single vertical stroke", "a thin upright line, sometimes with a short flag at the top",
            "a narrow mark that uses little of the image width",
            "a straight line that may lean slightly to the right", "one short stroke with no loops or curves"),
    "two": ("a curved hook at the top that sweeps down to a flat base",
            "a rounded top arc followed by a diagonal stroke", "a horizontal line along the bottom",
            "an open curve at the top joined to a straight base", "a shape like a swan sitting on a flat line"),
    "three": ("two open bumps stacked on top of each other", "two curves that open to the left",
              "a middle point where the upper and lower curves meet",
              "a rounded right side with an open left side", "a pair of arcs like a curved letter E in reverse"),
    "four": ("a vertical stroke crossed by a horizontal bar", "an angled or open triangle on the upper left",
             "a right vertical line that extends below the crossbar", "straight strokes meeting at sharp corners",
             "a crossbar near the middle of its height"),
    "five": ("a flat horizontal bar at the top", "a short vertical stroke on the upper left",
             "a round belly at the bottom that opens to the left",
             "a sharp corner at the top left and a curve at the bottom",
             "a hat-like top line over a curved lower half"),
    "six": ("a closed loop at the bottom", "a long curved stroke that comes down from the top",
            "a round lower belly under an open top", "a curved tail rising from the loop to the upper right",
            "a shape like a snail shell that opens upward"),
    "seven": ("a horizontal line across the top", "a long diagonal stroke falling from the top right",
              "a sharp corner where the top bar meets the slanted stroke",
              "mostly straight lines with no closed loop", "an empty lower left area beneath the top bar"),
    "eight": ("two closed loops stacked vertically", "a crossing point in the middle where the strokes meet",
              "an upper loop that is often smaller than the lower loop", "a shape like a snowman or an hourglass",
              "a symmetric figure made of two rings"),
    "nine": ("a closed loop at the top", "a vertical or curved tail that hangs down on the right",
             "a round head on top of a straight stem", "an upper circle with a stroke running down from its right side",
             "a shape like an upside-down six"),
}

# ----------------------------------------------------------------------------- distinctive (dist)
DIST_FRAMES = (
    "Unlike other digits, the digit {n} has {f}.",
    "The number {n} can be told apart by {f}.",
    "What makes a handwritten {n} distinctive is {f}.",
    "Compared with similar numbers, the digit {n} shows {f}.",
    "A photo of the digit {n} stands out because of {f}.",
)
DIST_FACTS = {
    "zero": ("an empty centre with no crossing strokes, unlike eight", "a loop that closes at the top, unlike six",
             "a closed loop without any tail, unlike nine", "a round outline without the straight bar of seven",
             "a single ring rather than the two rings of eight"),
    "one": ("the narrowest shape of all ten digits", "a lone straight stroke without the crossbar of four",
            "a missing top bar, unlike seven", "the absence of any loop, unlike six or nine",
            "very little ink compared with eight or zero"),
    "two": ("a flat base stroke that three does not have",
            "a curve at the top and a straight line at the bottom, unlike seven",
            "a diagonal running to the lower left, unlike five", "an open shape with no closed loop, unlike eight",
            "a bottom line that runs from left to right"),
    "three": ("two bumps opening to the left, unlike eight which closes them",
              "a missing vertical line on the left, unlike five", "a pointed middle joint that eight does not have",
              "curves on the right only, unlike zero", "an open left side, unlike nine and eight"),
    "four": ("a crossbar that no other digit has", "straight sharp corners instead of the curves of nine",
             "an open top, unlike the closed loop of nine", "a stroke that crosses another, unlike one",
             "a vertical line on the right that reaches the bottom"),
    "five": ("a top bar joined to a left stroke, unlike three", "a lower curve that opens to the left, unlike six",
             "a flat top, unlike the rounded top of two", "a corner at the upper left, unlike three",
             "a gap between the top bar and the belly, unlike six"),
    "six": ("a loop at the bottom, unlike nine with its loop at the top",
            "a curved top stroke, unlike the flat bar of five", "an open top, unlike eight",
            "a closed lower belly, unlike five", "a stroke that starts high on the right and curls into a loop"),
    "seven": ("a top bar with a single slanted line, unlike one", "a missing curve at the bottom, unlike two",
              "a sharp angle at the upper right, unlike nine", "the absence of a closed loop, unlike nine",
              "an empty lower left corner, unlike two"),
    "eight": ("two closed loops, unlike zero with only one", "a crossing in the centre, unlike three",
              "closed left sides, unlike three", "loops at both top and bottom, unlike six and nine",
              "the most ink of all ten digits"),
    "nine": ("a loop at the top, unlike six with its loop at the bottom",
             "a straight tail under the loop, unlike eight", "a closed head, unlike the open top of four",
             "a stem on the right, unlike zero", "a round top, unlike the flat bar of seven"),
}

# ------------------------------------------------------------------------ cause 1: overall shape
SHAPE_FRAMES = (
    "The overall shape of the digit {n} is {f}.",
    "In outline, a handwritten {n} forms {f}.",
    "The silhouette of the number {n} is {f}.",
    "Seen as a whole, a photo of the digit {n} shows {f}.",
    "The shape of a handwritten digit {n} is {f}.",
)
SHAPE_FACTS = {
    "zero": ("a closed oval", "a tall ring with a hollow middle", "a smooth egg-like outline",
             "a round form with no corners"),
    "one": ("a thin vertical bar", "a narrow upright line", "a tall stick with a small flag at the top",
            "a slim form with no enclosed area"),
    "two": ("a hook above a flat base", "a curve that turns into a diagonal and a floor line",
            "an open form like a reversed letter S with a flat bottom",
            "a rounded head on a slanted neck and a flat foot"),
    "three": ("two stacked open arcs", "a double bump that opens to the left",
              "a letter B with its left side missing", "a pair of curves joined at a middle point"),
    "four": ("an open triangle with a stem", "a cross of a vertical and a horizontal stroke",
             "an angular form like a chair", "a right-angled frame with a long right leg"),
    "five": ("a flat cap over a round belly", "a corner on top and a curve below",
             "a hook hanging from a flag", "an open lower bowl under a straight top"),
    "six": ("a loop with a curved stem rising from it", "a round base with a tall curved back",
            "a snail-like curl that closes at the bottom", "a closed belly under an open top"),
    "seven": ("a flat top with a falling diagonal", "an angular form like a slanted upside-down letter L",
              "a sharp corner on the upper right", "a bar and a slanted leg with no curves"),
    "eight": ("two rings stacked like a snowman", "an hourglass figure", "a figure with two closed bowls",
              "a symmetric double loop"),
    "nine": ("a round head on a straight stem", "a loop on top with a tail below",
             "an upside-down version of a six", "a balloon on a string"),
}

# -------------------------------------------------------------------------- cause 2: pen strokes
STROKE_FRAMES = (
    "A handwritten digit {n} is written with {f}.",
    "The pen strokes of the number {n} form {f}.",
    "Writing the digit {n} takes {f}.",
    "A photo of the digit {n} shows {f}.",
    "The ink of a handwritten {n} follows {f}.",
)
STROKE_FACTS = {
    "zero": ("one continuous curved stroke", "a single line that ends where it began",
             "a smooth curve with an even thickness", "a stroke that goes around without lifting the pen"),
    "one": ("a single straight downward stroke", "one short line from top to bottom",
            "a straight stroke with an optional small upstroke at the top", "the fewest strokes of any digit"),
    "two": ("a curved stroke that turns into a straight line", "an arc, a diagonal and a flat horizontal stroke",
            "a single stroke that ends with a line to the right", "a smooth curve that becomes straight at the bottom"),
    "three": ("two curved strokes joined at the middle", "a stroke that bends twice to the right",
              "curved lines that meet at a point in the centre", "a continuous line with two rounded turns"),
    "four": ("two or three straight strokes", "a straight line that crosses another straight line",
             "strokes that meet at sharp angles", "a long vertical stroke and a short horizontal one"),
    "five": ("a straight top stroke and a curved lower stroke", "a short vertical line joined to a round curve",
             "two strokes, one flat and one rounded", "a pen lift between the top bar and the body"),
    "six": ("one curved stroke that ends in a loop", "a long curve that closes on itself at the bottom",
            "a stroke that spirals inward at the base", "a smooth line without straight parts"),
    "seven": ("two straight strokes", "a horizontal stroke followed by a long diagonal",
              "straight lines meeting at one sharp corner", "a stroke that changes direction only once"),
    "eight": ("a stroke that crosses itself in the middle", "one continuous line forming two loops",
              "curved strokes that meet at a crossing", "a line that winds around twice"),
    "nine": ("a loop followed by a downward stroke", "a circle and a straight or curved tail",
             "a stroke that closes a loop then runs down", "a curved head with a straight line below"),
}

# ------------------------------------------------------------------- cause 3: layout of the ink
LAYOUT_FRAMES = (
    "The layout of the digit {n} has {f}.",
    "Within the frame, a handwritten {n} has {f}.",
    "A photo of the digit {n} shows {f}.",
    "An image of the number {n} typically has {f}.",
    "A scan of a handwritten digit {n} has {f}.",
)
LAYOUT_FACTS = {
    "zero": ("ink around the border of a hollow centre", "an empty middle surrounded by a ring of ink",
             "ink spread evenly on the left and right", "dark pixels on all four sides of the centre"),
    "one": ("ink concentrated in a narrow central column", "wide empty areas on the left and right",
            "a mostly blank background with one vertical band of ink",
            "dark pixels in the middle column from top to bottom"),
    "two": ("ink across the whole bottom row", "a curve in the upper half and a line along the base",
            "an empty region on the middle left", "dark pixels running from the upper right to the lower left"),
    "three": ("ink mostly on the right side", "an empty left side", "dark pixels at the top, middle and bottom",
              "blank space on the left where the curves open"),
    "four": ("ink in the upper left and along the right", "an empty bottom left corner",
             "a horizontal band of ink near the middle", "a dark vertical band on the right side"),
    "five": ("ink along the top and in the lower half", "an empty area on the upper right",
             "a blank region on the lower left inside the curve", "dark pixels on the left in the upper half"),
    "six": ("most of the ink in the lower half", "a hollow space in the lower middle", "an empty upper right area",
            "dark pixels along the left side"),
    "seven": ("ink along the top edge", "an empty lower left region",
              "a diagonal band of ink from the upper right to the bottom", "very little ink in the bottom half"),
    "eight": ("ink in both the upper and lower halves", "two small hollow spaces, one above the other",
              "dark pixels in the centre where the loops cross", "ink filling most of the image"),
    "nine": ("most of the ink in the upper half", "a hollow space in the upper middle", "an empty lower left area",
             "dark pixels along the right side"),
}

FILES = {
    os.path.join("attributes", "digits_des.json"): (DES_FRAMES, DES_FACTS),
    os.path.join("attributes", "digits_dist.json"): (DIST_FRAMES, DIST_FACTS),
    os.path.join("causes", "digits_cse_1.json"): (SHAPE_FRAMES, SHAPE_FACTS),
    os.path.join("causes", "digits_cse_2.json"): (STROKE_FRAMES, STROKE_FACTS),
    os.path.join("causes", "digits_cse_3.json"): (LAYOUT_FRAMES, LAYOUT_FACTS),
}


def sentences(frames, facts):
    """{class name: every fact in every phrasing}, fact-major, capitalised; the order is fixed."""
    out = {}
    for name in NAMES:
        said = [frame.format(n=name, f=fact) for fact in facts[name] for frame in frames]
        out[name] = [s[0].upper() + s[1:] for s in said]
    return out


def render(frames, facts) -> str:
    return json.dumps(sentences(frames, facts), indent=2, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the files are up to date")
    parser.add_argument("--out", default=HERE, help="folder to write into (default: beside this script)")
    args = parser.parse_args(argv)
    stale = []
    for rel, (frames, facts) in FILES.items():
        path = os.path.join(args.out, rel)
        text = render(frames, facts)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                stale.append(path)
        else:
            atomic_write_text(path, text)
            counts = sorted({len(v) for v in sentences(frames, facts).values()})
            print(f"wrote {path} ({len(NAMES)} classes x {counts[0]} sentences)")
    if stale:
        print("out of date (run python descriptions/builtin/make_digits_descriptions.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
