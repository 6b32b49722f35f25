"""
==========================================
Side effects of a drug: the first lab
==========================================

The classic first lab of many deep-learning courses: an experimental drug
was tested on 2,100 people aged 13 to 100. Half of them were under 65, and
95% of those had no side effects; 95% of the patients aged 65 or older had
side effects. Can a small network learn that from the age alone?

The lab's recipe carries over unchanged: scale the ages to [0, 1] with
:class:`~sklearn.preprocessing.MinMaxScaler`, then train a network with two
hidden layers of 16 and 32 ReLU units and a softmax output, with Adam and
mini-batches of 10 samples. Here the two steps form one scikit-learn
:class:`~sklearn.pipeline.Pipeline`.
"""

# %%
# Generate the trial data
# -----------------------
# As in the lab, each group holds exact proportions: of 1,050 younger
# patients, 50 had side effects (5%), and of 1,050 older patients, 1,000
# did. A second, independent trial of 210 patients is the test set.
import numpy as np


def make_trial(n_per_group, rng):
    """Ages and side-effect labels, with exactly 5% atypical patients per group."""
    n_atypical = n_per_group // 20
    young = rng.integers(13, 65, size=n_per_group)
    old = rng.integers(65, 101, size=n_per_group)
    ages = np.concatenate([young, old])
    side_effects = np.concatenate(
        [
            np.arange(n_per_group) < n_atypical,  # the 5% of younger people with side effects
            np.arange(n_per_group) >= n_atypical,  # the 95% of older people with them
        ]
    ).astype(int)
    order = rng.permutation(len(ages))
    return ages[order].reshape(-1, 1).astype(float), side_effects[order]


rng = np.random.default_rng(0)
X_train, y_train = make_trial(1050, rng)
X_test, y_test = make_trial(105, rng)
print(f"{len(X_train)} training patients, {len(X_test)} test patients")
print(f"side effects in training: {y_train.mean():.1%}")

# %%
# The pipeline
# ------------
# ``early_stopping=True`` holds out 10% of the training patients, as the
# lab's ``validation_split=0.1`` does, and stops once the validation
# accuracy has not improved for ``n_iter_no_change`` epochs, keeping the
# best weights. The network trains on the GPU when there is one.
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier

model = Pipeline(
    [
        ("scale", MinMaxScaler()),
        (
            "mlp",
            MLPClassifier(
                hidden_layer_sizes=(16, 32),
                batch_size=10,
                learning_rate_init=0.001,
                max_iter=30,
                early_stopping=True,
                validation_fraction=0.1,
                random_state=0,
            ),
        ),
    ]
)
model.fit(X_train, y_train)
mlp = model.named_steps["mlp"]
print(f"trained for {mlp.n_iter_} epochs on {mlp.net_.device}")

# %%
# Test accuracy
# -------------
# 5% of each test group are atypical, so no model can beat 200 / 210 =
# 0.952 on this test set; a network that learnt the age threshold of 65
# reaches it.
accuracy = model.score(X_test, y_test)
print(f"test accuracy: {accuracy:.3f}")
assert accuracy >= 0.93, f"the lab's target is a test accuracy of 0.93, got {accuracy:.3f}"

for age in (20, 50, 64, 66, 80):
    p = model.predict_proba([[age]])[0, 1]
    print(f"age {age:3d}: probability of side effects {p:.2f}")

# %%
# Learning curves
# ---------------
# ``loss_curve_`` holds the training loss after each epoch and
# ``validation_scores_`` the accuracy on the held-out patients.
import matplotlib.pyplot as plt

fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(9, 3.5))
epochs = np.arange(1, mlp.n_iter_ + 1)
ax_loss.plot(epochs, mlp.loss_curve_, marker="o")
ax_loss.set(xlabel="epoch", ylabel="training loss (log loss)", title="loss_curve_")
ax_val.plot(epochs, mlp.validation_scores_, marker="o", color="tab:green")
ax_val.set(xlabel="epoch", ylabel="validation accuracy", title="validation_scores_")
fig.tight_layout()
plt.show()
