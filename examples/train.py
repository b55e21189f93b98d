"""train.py — a small training loop that saves checkpoints the way real ones do.

Linear regression on synthetic data, trained with minibatch SGD and momentum. Each epoch it
saves a pickle of its whole state to checkpoints/epoch_N.pkl (written to a temporary file in
the same directory and moved into place with os.replace, so a reader never sees half a
file), the model as a PyTorch nn.Linear state dict with torch.save to
checkpoints/model_N.pt and, like the Hugging Face Trainer, a
checkpoints/checkpoint-STEP/trainer_state.json with the log history. It knows nothing about
ckmon: run it as

    build/ckmon run -- /usr/bin/python3 examples/train.py

and ckmon reports every checkpoint from the outside. Runs in about a second.
"""
import json
import os
import pickle
import tempfile

import numpy as np
import torch

EPOCHS = 5
FEATURES = 64
SAMPLES = 512
BATCH = 32
LEARNING_RATE = 0.05
LR_DECAY = 0.7
MOMENTUM = 0.9
CHECKPOINTS = "checkpoints"


def make_data(rng):
    true_weights = rng.normal(size=FEATURES)
    x = rng.normal(size=(SAMPLES, FEATURES))
    y = x @ true_weights + 0.1 * rng.normal(size=SAMPLES)
    return x, y


def mse(weights, bias, x, y):
    return float(np.mean((x @ weights + bias - y) ** 2))


def save_atomically(obj, path):
    """pickle.dump to a temporary file beside path, then os.replace onto it."""
    directory = os.path.dirname(path)
    with tempfile.NamedTemporaryFile("wb", dir=directory, suffix=".pkl", delete=False) as f:
        pickle.dump(obj, f)
    os.replace(f.name, path)


def save_torch_model(weights, bias, epoch, loss):
    """The model as PyTorch holds it: an nn.Linear's state dict, saved with torch.save."""
    model = torch.nn.Linear(FEATURES, 1, dtype=torch.float32)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(weights).reshape(1, FEATURES))
        model.bias.fill_(bias)
    torch.save({"epoch": epoch, "loss": loss, "model": model.state_dict()},
               os.path.join(CHECKPOINTS, f"model_{epoch}.pt"))


def save_trainer_state(global_step, epoch, log_history):
    directory = os.path.join(CHECKPOINTS, f"checkpoint-{global_step}")
    os.makedirs(directory, exist_ok=True)
    state = {
        "epoch": float(epoch),
        "global_step": global_step,
        "max_steps": EPOCHS * (SAMPLES // BATCH),
        "num_train_epochs": EPOCHS,
        "best_metric": min(entry["loss"] for entry in log_history),
        "log_history": log_history,
    }
    with open(os.path.join(directory, "trainer_state.json"), "w") as f:
        json.dump(state, f, indent=2)


def main():
    rng = np.random.default_rng(0)
    x, y = make_data(rng)
    weights, bias = np.zeros(FEATURES), 0.0
    velocity, bias_velocity = np.zeros(FEATURES), 0.0
    lr, global_step, log_history = LEARNING_RATE, 0, []
    os.makedirs(CHECKPOINTS, exist_ok=True)

    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(SAMPLES)
        for start in range(0, SAMPLES, BATCH):
            batch = order[start : start + BATCH]
            error = x[batch] @ weights + bias - y[batch]
            velocity = MOMENTUM * velocity - lr * 2 * x[batch].T @ error / BATCH
            bias_velocity = MOMENTUM * bias_velocity - lr * 2 * float(np.mean(error))
            weights, bias = weights + velocity, bias + bias_velocity
            global_step += 1
        loss = mse(weights, bias, x, y)
        log_history.append({"loss": loss, "learning_rate": lr, "epoch": float(epoch),
                            "step": global_step})
        checkpoint = {
            "epoch": epoch,
            "step": global_step,
            "lr": lr,
            "loss": loss,
            "weights": weights.tolist(),
            "bias": bias,
            "optimizer": {
                "state": {"momentum_buffer": velocity.tolist(), "step": global_step},
                "param_groups": [{"lr": lr, "momentum": MOMENTUM, "weight_decay": 0.0}],
            },
        }
        save_atomically(checkpoint, os.path.join(CHECKPOINTS, f"epoch_{epoch}.pkl"))
        save_torch_model(weights, bias, epoch, loss)
        save_trainer_state(global_step, epoch, log_history)
        print(f"epoch {epoch}: loss {loss:.5f}, lr {lr:.4f}", flush=True)
        lr *= LR_DECAY


if __name__ == "__main__":
    main()
