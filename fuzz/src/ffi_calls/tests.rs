#[test]
fn seeds_decode() {
    for (name, bytes, want) in super::seed_inputs() {
        let ops = super::decode(&bytes);
        let got: Vec<String> = ops
            .iter()
            .map(|o| {
                format!("{o:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        assert_eq!(got, want, "seed {name}");
    }
}
