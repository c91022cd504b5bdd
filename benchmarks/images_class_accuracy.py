"""How good are the class-conditional shapes samples after a few CPU minutes? Trains the images preset under a few
settings and prints, for each, the training time, the class accuracy of guided samples and the Frechet distance of
the judge's features to real images, as a markdown table (`benchmarks/RESULTS.md` holds the recorded one).

    python benchmarks/images_class_accuracy.py                      # every case, one after another
    python benchmarks/images_class_accuracy.py --case edm_lr2e-3    # one case (run several processes in parallel)

The judge is minisora's in-repo classifier (`minisora/models/classifier.py`), trained once on the real images.
"""
import argparse
import json
import time
from dataclasses import replace

import torch

from minisora.models.classifier import train_classifier
from minisora.train.images import ImagesConfig, evaluate_images, train_images
from tiny_datasets.shapes import NUM_CLASSES, ShapesDataset

BASE = ImagesConfig(steps=3000, learning_rate=2e-3, samples_per_class=16)
CASES = {
    "edm_lr1e-3": replace(BASE, learning_rate=1e-3),
    "edm_lr2e-3": BASE,
    "edm_lr2e-3_seed1": replace(BASE, seed=1),
    "edm_lr2e-3_2000steps": replace(BASE, steps=2000),
    "flow_lr2e-3": replace(BASE, objective="flow"),
    "uvit_edm_lr2e-3": replace(BASE, model="uvit", depth=5),
}


def run_case(name: str, config: ImagesConfig) -> dict:
    images, labels, _ = ShapesDataset(config.num_images, config.image_size, seed=config.seed).tensors()
    judge = train_classifier(images, labels, NUM_CLASSES, seed=0)
    start = time.time()
    ema, _ = train_images(config, images, labels, progress=False)
    seconds = time.time() - start
    scores = evaluate_images(ema, config, images, labels, judge=judge)
    return {"case": name, "seconds": round(seconds), "steps": config.steps, "judge_accuracy": scores["classifier_accuracy_on_real"],
            "accuracy": scores["trained"]["class_accuracy"], "frechet": scores["trained"]["frechet_distance"],
            "untrained_accuracy": scores["untrained"]["class_accuracy"],
            "untrained_frechet": scores["untrained"]["frechet_distance"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="run only these cases")
    parser.add_argument("--json", help="also append each result as a JSON line to this file")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {BASE.samples_per_class} guided samples "
          f"per class (guidance {BASE.guidance}, {BASE.sampler} with {BASE.sampling_steps} steps), chance "
          f"{1 / NUM_CLASSES:.1%}\n")
    print("| case | steps | train time | class accuracy | Frechet distance | untrained: accuracy, Frechet |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.case or CASES:
        result = run_case(name, CASES[name])
        print(f"| {name} | {result['steps']} | {result['seconds']} s | {result['accuracy']:.1%} | "
              f"{result['frechet']:.1f} | {result['untrained_accuracy']:.1%}, {result['untrained_frechet']:.1f} |",
              flush=True)
        if args.json:
            with open(args.json, "a") as file:
                file.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
