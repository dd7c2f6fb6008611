"""The rows of the verification corpus: varied English narration, written for it.

Each row is a tuple of sentences, so a defect can drop one whole sentence.
The rows mix names the pronouncing dictionary lacks, numbers, years, money,
percentages, ordinals, dialogue in quotes, and lengths from a few words to a
paragraph. ``EXTRA_SENTENCES`` are the sentences a take "with an extra
sentence" gains; none of them appears in a row.
"""

from __future__ import annotations

ROWS: dict[str, tuple[str, ...]] = {
    "r01": (
        "The lighthouse keeper climbed the stairs at dusk.",
        "He counted every step, as his father had done before him.",
        "At the top, the lamp waited, cold and patient.",
    ),
    "r02": (
        "Margaret opened the letter with trembling hands.",
        "It was from her brother, who had been missing for twelve years.",
    ),
    "r03": ("Mr. Okafor sold 320 apples on Tuesday.", "By Friday he had sold the rest, and his stall was empty."),
    "r04": ('"Are you coming or not?" asked Siobhan.', "Her cousin shrugged and reached for his coat."),
    "r05": ("Yes.",),
    "r06": ("The train to Edinburgh leaves at half past nine.",),
    "r07": (
        "In 1999, the village had only one telephone.",
        "It hung on the wall of the post office, and everyone knew its ring.",
        "When it rang at night, the whole street woke up.",
    ),
    "r08": ("The ticket cost $45, which was more than Daniel earned in a week.",),
    "r09": ("Prices rose by 12% in the spring.", "Nobody could explain why, least of all the bakers."),
    "r10": ("She finished 3rd in the race, behind two runners from the north.", "It was her best result in years."),
    "r11": ("Thank you, that will be all for today.",),
    "r12": (
        "Dr. Nguyen looked at the chart for a long time.",
        "Then she put it down and smiled.",
        '"You will be fine," she said.',
    ),
    "r13": (
        "The river froze early that winter.",
        "Children skated where the boats usually moored.",
        "Old men stood on the bank and shook their heads.",
        "They had never seen the ice so thick.",
    ),
    "r14": ("Come in, and close the door behind you.",),
    "r15": ("Xiomara kept a notebook of every bird she saw.", "By the end of the summer, it held forty-seven species."),
    "r16": ("The meeting was moved from Monday to Thursday.", "Half the committee never got the message."),
    "r17": (
        '"Where did you put the keys?" he shouted from the hall.',
        '"On the table, where they always are," she answered.',
    ),
    "r18": (
        "A small dog followed Ravi all the way home from school.",
        "His mother said he could keep it for one night.",
        "It stayed for fourteen years.",
    ),
    "r19": ("The recipe calls for two cups of flour, a pinch of salt, and three eggs.",),
    "r20": ("On the 4th of July, the town held a parade.", "The mayor rode in an open car and waved at everyone."),
    "r21": ("Nobody answered.",),
    "r22": (
        "The old clock in the hall struck midnight.",
        "Somewhere upstairs, a door creaked open.",
        "Eleanor held her breath and listened.",
    ),
    "r23": ("The company lost $2.5 million in its first year.", "In its second year, it made a small profit."),
    "r24": ("Bartholomew was the tallest boy in the class, and the quietest.",),
    "r25": (
        "We walked for hours along the coast.",
        "The wind was sharp, and the sea was the colour of slate.",
        "At last we found a small cafe and ordered soup.",
    ),
    "r26": ("Please hold the line.", "Your call is important to us."),
    "r27": ("The package arrived three days late, soaked through and badly torn.",),
    "r28": (
        "Professor Lindqvist taught mathematics for forty years.",
        "Her students still write to her every Christmas.",
    ),
    "r29": ('"I don\'t know," said Tom.', '"Maybe tomorrow."'),
    "r30": ("The garden was overgrown with roses and nettles.", "No one had tended it since the war."),
    "r31": ("At 7:30 every morning, the bus stopped outside the library.",),
    "r32": ("Seventeen ships left the harbour that night.", "Only nine came back."),
    "r33": ("Isabella's grandmother spoke four languages and cooked in all of them.",),
    "r34": (
        "The storm knocked out power across the county.",
        "Families gathered around candles and told stories.",
        "Some said later that it was the best night of the year.",
    ),
    "r35": ("He paid £20 for a map that turned out to be wrong.",),
    "r36": ("Wait here.", "I will be right back."),
    "r37": ("The museum holds more than 10,000 coins from the Roman empire.", "Most of them are kept in the basement."),
    "r38": (
        "Fatima had never seen snow before she moved to Toronto.",
        "The first morning, she stood at the window for an hour.",
    ),
    "r39": (
        "The experiment failed on the first attempt, and on the second.",
        "On the third attempt, the reaction finally began.",
    ),
    "r40": ("Good evening, and welcome to the programme.",),
    "r41": ("My brother-in-law runs a small hardware shop on the high street.", "He knows the name of every screw."),
    "r42": (
        "The match ended two all after ninety minutes.",
        "In the penalty shootout, the visitors won by a single goal.",
    ),
    "r43": ('"Run!" shouted Kofi, and they ran.',),
    "r44": ("The hotel had 212 rooms, but only one working lift.", "Guests on the top floor learned to be patient."),
    "r45": ("Leaves fell slowly from the oak tree.", "The cat watched each one with great suspicion."),
    "r46": (
        "The baker's daughter opened the shop at five o'clock every morning.",
        "By six, there was a queue down the street.",
    ),
    "r47": ("Her flight from Lisbon was delayed by 90 minutes.",),
    "r48": ("The bridge was built in 1887 and rebuilt in 1952.", "Its iron railings were painted green each spring."),
    "r49": ("I have told you a hundred times, do not feed the ducks bread.",),
    "r50": (
        "Joaquin tuned his guitar and began to play.",
        "The room fell silent.",
        "Even the waiters stopped to listen.",
    ),
    "r51": ("The census counted 48,000 people in the town.", "Ten years later, there were half as many."),
    "r52": ("It was the 21st century, and still the trains ran late.",),
    "r53": ("The fox slipped under the fence and vanished into the dark.",),
    "r54": (
        '"Is anybody there?" whispered Amara.',
        "Only the wind answered her.",
        "She lit the lantern and stepped inside.",
    ),
    "r55": ("The library fine was fifty cents a day.", "After a year, Harold owed more than the book was worth."),
    "r56": ("A cold wind blew across the empty car park.",),
    "r57": (
        "The captain checked the compass, then the stars, then the compass again.",
        "They were hopelessly lost.",
        "He did not tell the crew.",
    ),
    "r58": ("Our team grew by 25% last quarter, and the office is now too small.",),
    "r59": (
        "Mrs. Abernathy kept bees in the garden behind the church.",
        "Her honey won a prize at the county show every year.",
    ),
    "r60": ("Turn left at the second set of lights, then keep going.",),
    "r61": ("The printer jammed again.", "Priya sighed, opened the tray, and pulled out a crumpled page."),
    "r62": (
        "Two hundred years ago, this valley was covered in forest.",
        "Today, only a few old trees remain near the river.",
    ),
    "r63": (
        "The detective closed his notebook.",
        '"I think we know who did it," he said.',
        "Nobody in the room moved.",
    ),
    "r64": ("The orchestra tuned up while the audience found their seats.",),
    "r65": ("Sebastian lost his glasses on Monday and found them on Friday, in the fridge.",),
    "r66": (
        "The road was closed for repairs from the 1st to the 15th of March.",
        "Drivers took the long way round through the hills.",
    ),
    "r67": ("Happy birthday, Grandpa!",),
    "r68": ("The mountain rises 4,810 metres above sea level.", "Its summit is covered in snow all year round."),
    "r69": (
        "Wei Ling practised the piano for three hours every day.",
        "Her neighbours did not always enjoy it.",
        "But when she played at the town hall, they all came to listen.",
    ),
    "r70": ("The shop sold umbrellas, boots, and warm woollen socks.", "In that town, it never went out of business."),
    "r71": ("Keep calm and carry on.",),
    "r72": ("The soup was too hot, the bread was too hard, and the waiter was too busy to care.",),
    "r73": (
        '"Do you remember the summer of 1976?" asked Uncle Fergus.',
        "Everyone groaned.",
        "They had heard the story many times.",
    ),
    "r74": (
        "The spacecraft travelled for nine months before it reached the planet.",
        "Its first photograph showed a red and dusty plain.",
    ),
    "r75": ("Meet me at the station at noon.",),
    "r76": (
        "The farmer counted his sheep twice, and both times he got a different number.",
        "In the end, he gave up and went to bed.",
    ),
    "r77": ("Lorenzo painted the fence white, then changed his mind and painted it blue.",),
    "r78": (
        "The students had thirty minutes to finish the test.",
        "Most of them finished in twenty.",
        "One boy was still writing when the bell rang.",
    ),
    "r79": ("Rain fell on the roofs of the city all night long.", "By morning, the streets shone like glass."),
    "r80": ("She signed the contract on page 3, and again on page 7.",),
}

EXTRA_SENTENCES: tuple[str, ...] = (
    "The kettle began to whistle in the kitchen.",
    "Outside, a car horn sounded twice.",
    "Nobody had expected the weather to change so quickly.",
    "He wondered whether he had left the oven on.",
    "The dog barked at something only it could see.",
    "A bell rang somewhere across the valley.",
    "It was the longest day of the year.",
    "She made a note to call her sister later.",
    "The price of bread had gone up again.",
    "Somebody was singing in the flat upstairs.",
    "The road ahead was dark and wet.",
    "A letter lay unopened on the doormat.",
    "The children were building a castle of sand.",
    "He could not remember where he had parked.",
    "The radio played an old song from the sixties.",
    "Three crows sat in a row on the telephone wire.",
)


def text_of(row_id: str) -> str:
    return " ".join(ROWS[row_id])
