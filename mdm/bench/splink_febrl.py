"""Splink on the Febrl data sets, configured like goldthread's Febrl benchmark (same fields,
similar comparison levels, term-frequency adjustment on names and suburb, the same blocking
rules), trained without labels. Prints one `RESULT {json}` line per data set."""

import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

logging.getLogger("splink").setLevel(logging.ERROR)
ROOT = Path(__file__).resolve().parent.parent / "testdata" / "febrl"
FIELDS = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb",
          "postcode", "state", "date_of_birth", "soc_sec_id"]


def load(name):
    frame = pd.read_csv(ROOT / name, dtype=str, skipinitialspace=True).fillna("")
    frame.columns = [column.strip() for column in frame.columns]
    for column in frame.columns:
        frame[column] = frame[column].str.strip().str.lower().replace("", None)
    frame["unique_id"] = frame["rec_id"]
    frame["entity"] = frame["rec_id"].str.split("-").str[1]
    return frame


def settings(link_type):
    jw = lambda column: cl.JaroWinklerAtThresholds(column, [0.92, 0.8])
    return SettingsCreator(
        link_type=link_type,
        comparisons=[
            jw("given_name").configure(term_frequency_adjustments=True),
            jw("surname").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("street_number", [1]),
            jw("address_1"),
            jw("address_2"),
            jw("suburb").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1]),
            cl.ExactMatch("state"),
            cl.DamerauLevenshteinAtThresholds("date_of_birth", [1]),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("postcode", "given_name"),
            block_on("soc_sec_id"),
            block_on("date_of_birth"),
            block_on("postcode", "street_number"),
            block_on("surname", "suburb"),
            block_on("address_1", "suburb"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def run(name, frames, link_type):
    started = time.perf_counter()
    db_api = DuckDBAPI()
    linker = Linker([db_api.register(frame) for frame in frames], settings(link_type))
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    train = time.perf_counter() - started
    started = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=0.99).as_pandas_dataframe()
    predict = time.perf_counter() - started
    entity = {row.unique_id: row.entity for frame in frames for row in frame.itertuples()}
    predicted = {tuple(sorted((l, r))) for l, r in zip(predictions["unique_id_l"], predictions["unique_id_r"])}
    truth = set()
    by_entity = {}
    for frame_index, frame in enumerate(frames):
        for unique_id in frame["unique_id"]:
            by_entity.setdefault(entity[unique_id], []).append((frame_index, unique_id))
    for members in by_entity.values():
        for i, (side_a, a) in enumerate(members):
            for side_b, b in members[i + 1:]:
                if link_type == "dedupe_only" or side_a != side_b:
                    truth.add(tuple(sorted((a, b))))
    true_positives = len(predicted & truth)
    precision = true_positives / len(predicted) if predicted else 1.0
    recall = true_positives / len(truth)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print("RESULT " + json.dumps({"tool": "splink", "dataset": name, "precision": precision, "recall": recall,
                                  "f1": f1, "train_seconds": train, "predict_seconds": predict}))
    sys.stdout.flush()


if __name__ == "__main__":
    run("febrl4", [load("dataset4a.csv"), load("dataset4b.csv")], "link_only")
    run("febrl3", [load("dataset3.csv")], "dedupe_only")
